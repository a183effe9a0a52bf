import json
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandError

from billing.services import spool_flush
from billing.spool import DrainReport
from billing.spool_files import DEAD_LETTER, spool_dir


class Command(BaseCommand):
    help = (
        "Write the usage rows that wait in this host's spool (PostgreSQL refused them) into the ledger. "
        "Idempotent: a row already in the ledger is counted as a duplicate, never twice. "
        "Exits 1 if PostgreSQL still refuses rows."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--wait", action="store_true", help="Wait for a drain already running, then drain.")
        parser.add_argument(
            "--requeue", action="store_true", help="First move the rows of the dead-letter file back into the spool."
        )
        parser.add_argument("--json", dest="as_json", action="store_true", help="Print the summary as one JSON object.")

    def handle(self, *args, wait: bool, requeue: bool, as_json: bool, **options) -> None:
        report = spool_flush(wait=wait, requeue=requeue)
        if as_json:
            self.stdout.write(json.dumps({**asdict(report), "spool_dir": str(spool_dir())}, sort_keys=True))
        else:
            self.stdout.write(_summary(report))
        if report.stopped:
            raise CommandError(f"PostgreSQL refused the rows: {report.stopped}")


def _summary(report: DrainReport) -> str:
    if report.busy_pid is not None:
        return (
            f"Another drain of {spool_dir()} is running (pid {report.busy_pid}); it writes the rows. "
            f"Nothing done; --wait waits for it. Rows waiting: {report.waiting}."
        )
    lines = [
        f"Usage spool {spool_dir()}:",
        f"  written             {report.written}",
        f"  duplicates ignored  {report.duplicates}  (already in the ledger)",
        f"  set aside           {report.set_aside}  (this run; {report.dead_letter} in {DEAD_LETTER})",
        f"  still waiting       {report.waiting}",
    ]
    if report.requeued:
        lines.insert(1, f"  requeued            {report.requeued}  (from {DEAD_LETTER})")
    if report.dead_letter:
        lines.append(f"Rows in {DEAD_LETTER} need an operator: see docs/operations.md, 'The usage spool'.")
    return "\n".join(lines)
