"""OpenAI-compatible clients per provider, configured from the environment.

``AI["PROVIDERS"]`` names, for each provider of the model catalog, the
environment variables that hold its base URL and API key. A provider without a
key has no client: models it serves are skipped (the gateway still answers with
the local model).
"""

import os
import threading

import openai

from saascore.conf import ai_settings

_clients: dict[tuple[str, str | None, str], openai.OpenAI] = {}
_lock = threading.Lock()


def provider_client(provider: str, *, timeout: float | None = None) -> openai.OpenAI | None:
    config = ai_settings.PROVIDERS.get(provider)
    if not config:
        return None
    api_key = os.environ.get(config.get("api_key_env", ""), "")
    if not api_key:
        return None
    base_url = os.environ.get(config.get("base_url_env", ""), "") or config.get("base_url") or None
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
