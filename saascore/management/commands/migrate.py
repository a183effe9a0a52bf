"""``migrate`` as the owner role: the ``owner`` database alias when it exists.

The application role owns no tables and cannot alter them; migrations need the
role that does (DATABASE_OWNER_URL).
"""

from django.conf import settings
from django.core.management.commands.migrate import Command as DjangoMigrate


class Command(DjangoMigrate):
    def add_arguments(self, parser):
        super().add_arguments(parser)
        default = "owner" if "owner" in settings.DATABASES else "default"
        parser.set_defaults(database=default)
