from django.core.management.base import BaseCommand

from billing.services import spool_flush
from billing.spool import spooled_files


class Command(BaseCommand):
    help = "Write usage rows that waited in the local spool while PostgreSQL was unavailable (idempotent)."

    def handle(self, *args, **options):
        written = spool_flush()
        left = spooled_files()
        self.stdout.write(f"{written} rows written; {len(left)} spool files left")
