"""The ASGI application: the gateway's hot paths on a lean async stack, the rest on Django's.

``LEAN_PATHS`` (the query endpoint, the OpenAI-compatible API) go to a Django
handler whose middleware is ``LEAN_MIDDLEWARE``: only middleware that runs
natively async (saascore/middleware.py), so a request crosses no thread between
the server and the view. Everything else (the admin, the dashboard, the other
DRF endpoints, health, metrics) goes to Django's handler with the full
``MIDDLEWARE`` (sessions, CSRF, messages, the admin's scope), where sync views
run in threads as Django runs them under ASGI. Both share one URLconf.
"""

import asyncio
import os

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.urls import set_script_prefix

from saascore import door
from saascore.api.errors import body_too_large, max_body_bytes
from saascore.api.openai_errors import is_openai_path, reshaped

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saascore.settings.production")

full = get_asgi_application()  # sets Django up


class LeanHandler(ASGIHandler):
    """Django's ASGI handler with ``LEAN_MIDDLEWARE`` in place of ``MIDDLEWARE``, and no thread
    hop of its own.

    Django's handler sends ``request_started`` and closes the response through
    ``sync_to_async``, inside a fresh ``ThreadSensitiveContext`` per request: two thread hops
    and a new thread for every request. Their receivers tidy the database connections of the
    thread they run in, and the loop's thread has none (the query path's SQL runs in
    ``saascore.pools.in_db`` threads, which tidy their own), so here the signals are not sent
    and the response is closed in place (its ``request_finished`` receivers find nothing to do).
    The request waits at the door (saascore/door.py) before it is built. A client that
    disconnects before its answer does not stop it: the answer is finished,
    cached and billed (the model was paid for either way; a client must not escape its bill
    by hanging up). A streamed answer stops when its client leaves, and is not produced past
    its first piece when the client left before it started (a view's streaming response may
    carry ``abandon``, an async callable that ends its stream then).
    """

    def load_middleware(self, is_async: bool = False) -> None:
        everything = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.LEAN_MIDDLEWARE  # read once, here, at start-up
        try:
            super().load_middleware(is_async=is_async)
        finally:
            settings.MIDDLEWARE = everything

    async def __call__(self, scope, receive, send) -> None:
        try:
            body = await self.read_body(receive)
        except RequestAborted:
            return
        except BodyTooLarge as too_large:  # a chunked body past the limit (a Content-Length one: middleware)
            refused = body_too_large(too_large.limit)
            await self.send_response(reshaped(refused) if is_openai_path(scope["path"]) else refused, send)
            return
        set_script_prefix(get_script_prefix(scope))
        try:
            async with door.entered():  # before the request is built: a burst waits here, newest first
                await self._handle(scope, body, receive, send)
        finally:
            body.close()

    async def read_body(self, receive):
        """Django's, stopped at ``API_MAX_BODY_BYTES``: a body sent without a Content-Length is
        not written to a file in full before anything looks at it."""
        limit, read = max_body_bytes(), 0

        async def bounded() -> dict:
            nonlocal read
            message = await receive()
            read += len(message.get("body", b""))
            if read > limit:
                raise BodyTooLarge(limit)
            return message

        return await super().read_body(bounded)

    async def _handle(self, scope, body, receive, send) -> None:
        request, error = self.create_request(scope, body)
        if request is None:
            await self.send_response(error, send)
            error.close()
            return
        left, streaming = asyncio.Event(), asyncio.Event()
        view = asyncio.create_task(self._respond(request, send, left, streaming))
        disconnect = asyncio.create_task(self.listen_for_disconnect(receive))
        await asyncio.wait({view, disconnect}, return_when=asyncio.FIRST_COMPLETED)
        if disconnect.done():
            disconnect.exception()  # RequestAborted: the client left (read, so asyncio does not log it)
            left.set()
        else:
            disconnect.cancel()
        if not view.done() and streaming.is_set():
            view.cancel()  # the client left a stream: it stops where it waits
        try:
            response = await view
        except asyncio.CancelledError:
            return
        response.close()

    async def _respond(self, request, send, left: asyncio.Event, streaming: asyncio.Event):
        response = await self.run_get_response(request)
        door.leave()  # the answer is built: sending it is not the door's business
        if response.streaming:
            if left.is_set():  # its client left before it started: not produced, nor sent
                abandon = getattr(response, "abandon", None)  # a live stream's: it settles now
                if abandon is not None:
                    await abandon()
                return response
            streaming.set()
        await self.send_response(response, send)
        return response


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"body over {limit} bytes")
        self.limit = limit


lean = LeanHandler()
LEAN_PATHS = tuple(settings.LEAN_PATHS)


async def application(scope, receive, send) -> None:
    if scope["type"] == "http" and scope["path"].startswith(LEAN_PATHS):
        await lean(scope, receive, send)
    else:
        await full(scope, receive, send)
