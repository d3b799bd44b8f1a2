"""Starts the chatwire server the standard integration tests talk to, and applies
the xfail list of test_standard.py (XFAIL_BY_MODEL)."""

from __future__ import annotations

import os

import pytest

from chatwire_server import Server
from fake_config import FAKE_CONFIG


@pytest.fixture(scope="session", autouse=True)
def _chatwire_for_standard_tests():
    # Providers are configured from the environment (keys, OPENAI_BASE_URL...).
    s = Server(FAKE_CONFIG)
    os.environ["CHATWIRE_TEST_ADDR"] = s.addr
    yield s
    s.stop()


def pytest_collection_modifyitems(config, items):
    from test_standard import pytest_collection_modifyitems_hook

    pytest_collection_modifyitems_hook(items)
