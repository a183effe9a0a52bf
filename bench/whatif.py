"""What-if patches for the gateway under the saturation bench (never used by the product).

They answer "how much faster would hits be if ...?" without changing product code:
bench/gunicorn_whatif.py applies them in each gunicorn worker after it starts.

    gc-log               log the workers' garbage collections of the oldest
                         generation, and any over 50 ms, with their duration.
"""

import time


def _gc_log() -> None:
    """Log every garbage collection of the oldest generation and any collection over 50 ms (stderr)."""
    import gc
    import sys

    started: dict[str, float] = {}

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started["t"] = time.perf_counter()
            return
        ms = (time.perf_counter() - started.get("t", time.perf_counter())) * 1000
        if info["generation"] == 2 or ms > 50:
            objects = len(gc.get_objects(generation=2)) if info["generation"] == 2 else -1
            sys.stderr.write(f"bench-gc generation={info['generation']} ms={ms:.1f} gen2_objects={objects}\n")

    gc.callbacks.append(callback)


PATCHES = {"gc-log": _gc_log}


def apply(names: str) -> list[str]:
    applied = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        PATCHES[name]()
        applied.append(name)
    return applied
