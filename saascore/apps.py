from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SaascoreConfig(AppConfig):
    name = "saascore"

    def ready(self) -> None:
        from saascore import checks  # noqa: F401  (registers the system checks)
        from saascore.grants import grant_app_role

        # Sent once per app that has models, after all migrations ran; the grants
        # are idempotent, so running them for each is harmless.
        post_migrate.connect(grant_app_role, dispatch_uid="saascore-grant-app-role")
