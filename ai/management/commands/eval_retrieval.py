import json as json_module
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ai.embeddings import get_embedder
from ai.rag.retrieval import retrieve
from tenants.commands import tenant_from_slug


class Command(BaseCommand):
    help = "hit@1, hit@5 and MRR of retrieval for JSON lines {query, expected_title} against a tenant's documents."

    def add_arguments(self, parser):
        parser.add_argument("--data", required=True, type=Path)
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--query-field", default="query")
        parser.add_argument("--title-field", default="expected_title")
        parser.add_argument("--k", type=int, default=10, help="chunks retrieved per query")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, data: Path, tenant: str, query_field, title_field, k, json, **options):
        if not data.exists():
            raise CommandError(f"No such file: {data}")
        tenant_obj = tenant_from_slug(tenant)
        rows = [json_module.loads(line) for line in data.read_text().splitlines() if line.strip()]
        embedder = get_embedder()
        ranks = []
        for done, row in enumerate(rows, 1):
            vector = embedder.embed([row[query_field]]).vectors[0]
            titles = list(dict.fromkeys(c.title for c in retrieve(tenant=tenant_obj, vector=vector, k=k)))
            expected = str(row[title_field])[:300]
            ranks.append(titles.index(expected) + 1 if expected in titles else None)
            if done % 50 == 0 or done == len(rows):
                sys.stderr.write(f"queries {done}/{len(rows)}\n")
        n = len(ranks) or 1
        result = {
            "queries": len(ranks),
            "hit@1": round(sum(1 for r in ranks if r == 1) / n, 4),
            "hit@5": round(sum(1 for r in ranks if r and r <= 5) / n, 4),
            "mrr": round(sum(1 / r for r in ranks if r) / n, 4),
            "tenant": tenant,
            "data": str(data),
        }
        if json:
            self.stdout.write(json_module.dumps(result, indent=2))
        else:
            self.stdout.write(
                f"{result['queries']} queries: hit@1 {result['hit@1']:.3f}  hit@5 {result['hit@5']:.3f}  "
                f"MRR {result['mrr']:.3f}"
            )
