from django.core.management.base import BaseCommand, CommandError

from saascore.embedded import start_all, status_all, stop_all


class Command(BaseCommand):
    help = "Start, stop or show the embedded PostgreSQL and Redis under var/ (development and tests)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["start", "stop", "status"])

    def handle(self, *args, action: str, **options):
        run = {"start": start_all, "stop": stop_all, "status": status_all}[action]
        try:
            result = run()
        except (RuntimeError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        for name, state in result.items():
            self.stdout.write(f"{name:9} {state}")
