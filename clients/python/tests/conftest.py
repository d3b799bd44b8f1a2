"""Session fixtures: one chatwire server (the fake models and the scripted
fakes of fake_config.py) started by the test session on a free port."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from chatwire_server import Server  # noqa: E402
from fake_config import FAKE_CONFIG  # noqa: E402


@pytest.fixture(scope="session")
def server():
    s = Server(FAKE_CONFIG, clear_provider_env=True)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def addr(server) -> str:
    return server.addr
