"""OpenAI-compatible clients per provider, configured from the environment.

``AI["PROVIDERS"]`` names, for each provider of the model catalog, the
environment variables that hold its base URL and API key. A provider without a
key has no client: models it serves are skipped (the gateway still answers with
the local model).
"""

import asyncio
import os
import threading
import weakref

import openai

from saascore.conf import ai_settings

_clients: dict[tuple[str, str | None, str], openai.OpenAI] = {}
_lock = threading.Lock()


def _provider_settings(provider: str) -> tuple[str | None, str] | None:
    """(base URL, API key) of a provider with credentials, else None."""
    config = ai_settings.PROVIDERS.get(provider)
    if not config:
        return None
    api_key = os.environ.get(config.get("api_key_env", ""), "")
    if not api_key:
        return None
    return os.environ.get(config.get("base_url_env", ""), "") or config.get("base_url") or None, api_key


def provider_client(provider: str, *, timeout: float | None = None) -> openai.OpenAI | None:
    settings = _provider_settings(provider)
    if settings is None:
        return None
    base_url, api_key = settings
    key = (provider, base_url, api_key)
    with _lock:
        if key not in _clients:
            _clients[key] = openai.OpenAI(
                base_url=base_url,
                api_key=api_key,
                timeout=timeout or ai_settings.LLM_TIMEOUT,
                max_retries=ai_settings.LLM_MAX_RETRIES,
            )
        return _clients[key]


_async_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()


def async_provider_client(provider: str) -> openai.AsyncOpenAI | None:
    """The async client of ``provider`` for the running event loop (its connections are the loop's)."""
    settings = _provider_settings(provider)
    if settings is None:
        return None
    clients = _async_clients.setdefault(asyncio.get_running_loop(), {})
    if settings not in clients:
        base_url, api_key = settings
        clients[settings] = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, timeout=ai_settings.LLM_TIMEOUT, max_retries=ai_settings.LLM_MAX_RETRIES
        )
    return clients[settings]
