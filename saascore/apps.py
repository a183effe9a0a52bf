import logging

from django.apps import AppConfig
from django.core.signals import request_finished


class SaascoreConfig(AppConfig):
    name = "saascore"

    def ready(self) -> None:
        from django.conf import settings

        from saascore import checks  # noqa: F401  (registers the system checks)
        from saascore.logs import clear_request_context

        request_finished.connect(clear_request_context, dispatch_uid="saascore-clear-request-context")
        if getattr(settings, "LOG_FORMAT", None) == "json":
            logging.captureWarnings(True)  # Python warnings become JSON log lines too (logger py.warnings)
