"""gunicorn settings of the saturation bench's what-if runs: the product's own
(saascore/gunicorn_conf.py), plus bench/whatif.py's patches named in BENCH_WHATIF,
applied in each worker once it has loaded the application."""

import os

import saascore.gunicorn_conf as _product
from saascore.gunicorn_conf import *  # noqa: F403

_product_post_worker_init = getattr(_product, "post_worker_init", None)


def post_worker_init(worker) -> None:
    if _product_post_worker_init:
        _product_post_worker_init(worker)
    from bench.whatif import apply

    worker.log.info("what-if patches: %s", apply(os.environ.get("BENCH_WHATIF", "")))
