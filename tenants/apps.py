import sys
from pathlib import Path

from django.apps import AppConfig
from django.db.models.signals import post_migrate

# Commands that serve requests or run tasks: their changes name their own actor (admin, API key) or "system".
_SERVING_COMMANDS = {"runserver", "db_worker", "testserver"}


class TenantsConfig(AppConfig):
    name = "tenants"

    def ready(self) -> None:
        from tenants.grants import grant_app_role

        # Sent once per app that has models, after all migrations ran; the grants
        # are idempotent, so running them for each is harmless.
        post_migrate.connect(grant_app_role, dispatch_uid="saascore-grant-app-role")
        _name_command_actor(sys.argv)


def _name_command_actor(argv: list[str]) -> None:
    """Under ``manage.py <command>``, changes nobody else claims are the command's in the audit trail."""
    from tenants.audit import set_process_actor

    if len(argv) > 1 and Path(argv[0]).name == "manage.py" and argv[1] not in _SERVING_COMMANDS:
        set_process_actor(f"command {argv[1]}")
