from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TenantsConfig(AppConfig):
    name = "tenants"

    def ready(self) -> None:
        from tenants.grants import grant_app_role

        # Sent once per app that has models, after all migrations ran; the grants
        # are idempotent, so running them for each is harmless.
        post_migrate.connect(grant_app_role, dispatch_uid="saascore-grant-app-role")
