"""Fixtures of the ai app's tests."""

import pytest

from tests.openai_server import OpenAIServer


@pytest.fixture
def upstream(settings, monkeypatch):
    """The remote LLM: a local OpenAI-compatible server behind every paid model."""
    with OpenAIServer() as server:
        settings.AI = {"PROVIDERS": {
            "openai": {"base_url": server.base_url, "api_key_env": "TEST_OPENAI_KEY"},
            "anthropic": {"base_url": server.base_url, "api_key_env": "TEST_OPENAI_KEY"},
        }, "LLM_MAX_RETRIES": 0}  # fmt: skip
        monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")
        yield server
