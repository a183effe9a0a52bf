"""Settings of a gunicorn that a test serves (tests/serving.py): the development settings,
with ``settings.AI`` overrides from ``SAASCORE_TEST_AI`` (JSON), e.g. a short spend reservation
so that a test can watch a killed worker's reservation expire."""

import json
import os

from saascore.settings.local import *  # noqa: F403
from saascore.settings.local import AI

AI = {**AI, **json.loads(os.environ.get("SAASCORE_TEST_AI") or "{}")}
