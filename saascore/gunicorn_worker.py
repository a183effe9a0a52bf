"""The gunicorn worker: uvicorn serving the ASGI application (saascore/asgi.py).

uvloop and httptools, no ASGI lifespan (Django has none), and no uvicorn access
log: the application writes its own access line (``saascore.access``), which
leaves the query string out.
"""

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "uvloop", "http": "httptools", "lifespan": "off", "access_log": False}
