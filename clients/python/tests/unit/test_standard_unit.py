"""LangChain's standard unit tests for ChatChatwire (no server needed).

Feature flags (the standard tests' own): is_lc_serializable is False (langchain-core's
loader only loads classes on its own allowlist, so a round trip cannot pass), so
test_serdes is skipped; test_init_from_env checks CHATWIRE_API_KEY.
"""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import ChatModelUnitTests

from chatwire.langchain import ChatChatwire


class TestChatChatwireUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatChatwire]:
        return ChatChatwire

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "anthropic:claude-3-haiku-20240307"}

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_pdf_inputs(self) -> bool:
        return True

    @property
    def supports_audio_inputs(self) -> bool:
        return True

    @property
    def supports_anthropic_inputs(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def supports_pdf_tool_message(self) -> bool:
        return True

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"CHATWIRE_API_KEY": "tok-from-env"},
            {"model": "fake:echo", "addr": "127.0.0.1:1"},
            {"api_key": "tok-from-env", "model": "fake:echo"},
        )
