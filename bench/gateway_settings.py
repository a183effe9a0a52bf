"""Settings of the gateway under the end-to-end benchmark: the local settings (embedded
services under $SAASCORE_VAR_DIR), with the semantic tier on or off (BENCH_SEMANTIC_TIER)
and, for experiments, BENCH_AI: a JSON object of ``AI`` settings over the defaults
(bench/saturation_bench.py --ai)."""

import json
import os

from saascore.settings.local import *  # noqa: F403

AI = {
    **globals().get("AI", {}),
    "SEMANTIC_TIER": os.environ.get("BENCH_SEMANTIC_TIER", "on") == "on",
    **json.loads(os.environ.get("BENCH_AI") or "{}"),
}
