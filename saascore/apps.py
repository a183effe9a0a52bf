import logging

from django.apps import AppConfig
from django.core.signals import request_finished
from django.db.models.signals import post_migrate


class SaascoreConfig(AppConfig):
    name = "saascore"

    def ready(self) -> None:
        from django.conf import settings

        from saascore import checks  # noqa: F401  (registers the system checks)
        from saascore.grants import grant_app_role
        from saascore.logs import clear_request_context

        # Sent once per app that has models, after all migrations ran; the grants
        # are idempotent, so running them for each is harmless.
        post_migrate.connect(grant_app_role, dispatch_uid="saascore-grant-app-role")
        request_finished.connect(clear_request_context, dispatch_uid="saascore-clear-request-context")
        if getattr(settings, "LOG_FORMAT", None) == "json":
            logging.captureWarnings(True)  # Python warnings become JSON log lines too (logger py.warnings)
