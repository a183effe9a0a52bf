"""The gunicorn worker: uvicorn serving the ASGI application (saascore/asgi.py).

uvloop and httptools, no ASGI lifespan (Django has none), and no uvicorn access
log: the application writes its own access line (``saascore.access``), which
leaves the query string out.

Connections over the workers: with one listening socket shared by every worker, the
first event loop to wake accepts a whole burst of connections (measured: 15 of 16
keep-alive clients on one worker, the other core idle). With ``GUNICORN_REUSE_PORT=1``
(saascore/gunicorn_conf.py) each worker also listens on a socket of its own bound to
the same address with ``SO_REUSEPORT``, among which the kernel spreads new
connections; the shared socket keeps being served. The price: a worker that exits
resets the connections the kernel queued on its own socket, unless the host sets
``net.ipv4.tcp_migrate_req=1``; hence off by default.
"""

import logging
import signal
import socket
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

    def init_signals(self) -> None:
        """uvicorn shuts down gracefully on SIGTERM or SIGINT and then raises the signal again,
        which by default ends the process on the spot. Exit instead, so that gunicorn's
        ``worker_exit`` hook runs: it commits the usage rows of hits answered before their commit."""
        super().init_signals()
        for stop in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop, _exit)

    def run(self) -> None:
        self.sockets = [*self.sockets, *own_listeners(self.sockets, self.cfg.backlog)]
        super().run()


def _exit(signum: int, frame) -> None:
    sys.exit(0)


def own_listeners(shared: list, backlog: int) -> list[socket.socket]:
    """A socket of this worker's own beside each shared TCP listener that allows it."""
    own = []
    for listener in shared:
        if listener.family not in (socket.AF_INET, socket.AF_INET6):
            continue
        if not listener.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT):
            continue  # the master did not set it (reuse_port off): binding would fail
        sock = socket.socket(listener.family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(listener.getsockname())
            sock.listen(backlog)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            logging.getLogger("saascore.server").warning("no listening socket of its own: %s", exc)
            continue
        own.append(sock)
    return own
