"""The ASGI application: the gateway's hot paths on a lean async stack, the rest on Django's.

``LEAN_PATHS`` (the query endpoint, the OpenAI-compatible API) go to a Django
handler whose middleware is ``LEAN_MIDDLEWARE``: only middleware that runs
natively async (saascore/middleware.py), so a request crosses no thread between
the server and the view. Everything else (the admin, the dashboard, the other
DRF endpoints, health, metrics) goes to Django's handler with the full
``MIDDLEWARE`` (sessions, CSRF, messages, the admin's scope), where sync views
run in threads as Django runs them under ASGI. Both share one URLconf.
"""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saascore.settings.production")

full = get_asgi_application()  # sets Django up


class LeanHandler(ASGIHandler):
    """Django's ASGI handler with ``LEAN_MIDDLEWARE`` in place of ``MIDDLEWARE``."""

    def load_middleware(self, is_async: bool = False) -> None:
        everything = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.LEAN_MIDDLEWARE  # read once, here, at start-up
        try:
            super().load_middleware(is_async=is_async)
        finally:
            settings.MIDDLEWARE = everything


lean = LeanHandler()
LEAN_PATHS = tuple(settings.LEAN_PATHS)


async def application(scope, receive, send) -> None:
    if scope["type"] == "http" and scope["path"].startswith(LEAN_PATHS):
        await lean(scope, receive, send)
    else:
        await full(scope, receive, send)
