import json as json_module
import sys
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from ai.cache.evaluation import stderr_progress
from ai.faq_evaluation import evaluate, read_faq, read_oos, read_pairs, same_text
from ai.router.io import starter_examples_ensure
from tenants.models import Tenant
from tenants.services import tenant_create


class Command(BaseCommand):
    help = (
        "End to end on a fresh FAQ tenant: load the FAQ, ask its questions, then their rephrasings (and "
        "out-of-scope questions) over the real pipeline; in-scope rate, hit precision and recall, right "
        "document, out-of-scope refusals (ai/faq_evaluation.py)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--faq", required=True, type=Path, help="JSON lines {question, answer}")
        parser.add_argument("--pairs", required=True, type=Path, help="CSV question_1,question_2,similar")
        parser.add_argument("--tenant", required=True, help="slug of the tenant to create (must not exist)")
        parser.add_argument("--oos", type=Path, help="JSON lines {text}: questions no FAQ entry covers")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, faq: Path, pairs: Path, tenant: str, oos: Path | None, json: bool, **options):
        for path in (faq, pairs, oos):
            if path is not None and not path.exists():
                raise CommandError(f"No such file: {path}")
        try:
            faq_rows, pair_rows = read_faq(faq), read_pairs(pairs)
            oos_rows = read_oos(oos) if oos else []
        except (ValueError, KeyError) as exc:
            raise CommandError(str(exc)) from exc
        unknown = {same_text(p.question_1) for p in pair_rows} - {same_text(row["question"]) for row in faq_rows}
        if unknown:
            sys.stderr.write(f"warning: {len(unknown)} first questions of the pairs are not FAQ questions\n")
        if Tenant.objects.filter(slug=tenant).exists():
            raise CommandError(f"Tenant {tenant!r} exists: eval_e2e loads the FAQ into a fresh tenant.")
        starter_examples_ensure()
        created = tenant_create(slug=tenant, name=f"eval_e2e {faq.name}")
        call_command(
            "load_jsonl", str(faq), tenant=tenant, text_field="answer", title_field="question", stdout=sys.stderr
        )
        result = evaluate(created, pair_rows, oos_rows, stderr_progress("asking"))
        result.update(faq=str(faq), pairs_file=str(pairs), oos_file=str(oos) if oos else None, tenant=tenant)
        self.stdout.write(json_module.dumps(result, indent=2) if json else _table(result))


def _table(r: dict) -> str:
    def pct(value):
        return "–" if value is None else f"{value:.1%}"

    return "\n".join(
        [
            f"{r['pairs']} pairs ({r['similar_pairs']} similar); asked {r['faq_questions_asked']} FAQ questions, "
            f"then {r['second_questions_asked']} second questions and {r['oos_asked']} out-of-scope",
            f"rephrasings routed in scope   {pct(r['in_scope_rate'])}",
            f"hits                          {r['hits']} ({r['hits_by_tier']['exact']} exact, "
            f"{r['hits_by_tier']['semantic']} semantic)",
            f"hit precision                 {pct(r['hit_precision'])}",
            f"hit recall                    {pct(r['hit_recall'])}",
            f"right document                {pct(r['right_document_rate'])}",
            f"out of scope refused          {pct(r['oos_refused_rate'])}",
            f"router calibration error      {r['router_calibration_error']}",
        ]
    )
