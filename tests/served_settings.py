"""Settings of a gunicorn that a test serves (tests/serving.py): the development settings,
with ``settings.AI`` overrides from ``SAASCORE_TEST_AI`` (JSON), e.g. a short spend reservation
so that a test can watch a killed worker's reservation expire. Static files come from the
apps, as in the test settings (no ``collectstatic`` before a test's server)."""

import json
import os

from saascore.settings.local import *  # noqa: F403
from saascore.settings.local import AI, STORAGES

AI = {**AI, **json.loads(os.environ.get("SAASCORE_TEST_AI") or "{}")}
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# Users made by the test process (the test settings' fast hasher) can sign in.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
