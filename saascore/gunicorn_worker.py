"""The gunicorn worker: uvicorn serving the ASGI application (saascore/asgi.py).

uvloop and httptools, no ASGI lifespan (Django has none), and no uvicorn access
log: the application writes its own access line (``saascore.access``), which
leaves the query string out.
"""

import sys

from uvicorn_worker import UvicornWorker

# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).
# The event loop shares the GIL with the CPU, database and ledger threads; a hit that
# waits 5 ms for the loop's turn is a slow hit.
GIL_SWITCH_INTERVAL = 0.001


class Worker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "uvloop", "http": "httptools", "lifespan": "off", "access_log": False}

    def init_process(self) -> None:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        super().init_process()
