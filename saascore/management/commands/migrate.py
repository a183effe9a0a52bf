"""``migrate`` as the owner role.

The application role owns no tables and cannot alter them; migrations need the
role that does (DATABASE_OWNER_URL, the ``owner`` alias). For the length of the
command the ``default`` connection itself is pointed at the owner role, so that
third-party migrations that use the default connection directly (django-tasks-db
does) run as the owner too instead of waiting on the owner's locks.
"""

import copy

from django.conf import settings
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections

_CONNECTION_KEYS = ("USER", "PASSWORD", "HOST", "PORT", "OPTIONS", "NAME")


class Command(DjangoMigrate):
    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.set_defaults(database="owner" if "owner" in settings.DATABASES else "default")

    def handle(self, *args, **options):
        if options["database"] != "owner":
            return super().handle(*args, **options)
        default = connections["default"]
        saved = copy.deepcopy({key: default.settings_dict.get(key) for key in _CONNECTION_KEYS})
        default.close()
        default.settings_dict.update(
            copy.deepcopy({k: connections["owner"].settings_dict.get(k) for k in _CONNECTION_KEYS})
        )
        try:
            return super().handle(*args, **{**options, "database": "default"})
        finally:
            default.close()
            default.settings_dict.update(saved)
