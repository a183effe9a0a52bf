import sys
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from ai.router.io import STARTER_EXAMPLES, parse_lines, router_examples_import
from tenants.commands import tenant_from_slug


class Command(BaseCommand):
    help = "Load router few-shot examples from JSON lines (default: the starter set), global or for one tenant."

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", type=Path, default=STARTER_EXAMPLES, help="'-' for stdin")
        parser.add_argument("--tenant", help="tenant slug (default: global examples)")

    def handle(self, *args, file: Path, tenant: str | None, **options):
        tenant_obj = tenant_from_slug(tenant)
        lines = sys.stdin if str(file) == "-" else _read(file)
        try:
            rows = parse_lines(lines)
            created, updated = router_examples_import(rows=rows, tenant=tenant_obj)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        where = f"tenant {tenant}" if tenant else "global"
        self.stdout.write(f"{created} created, {updated} updated ({where}, from {file})")


def _read(file: Path) -> list[str]:
    if not file.exists():
        raise CommandError(f"No such file: {file}")
    return file.read_text().splitlines()
