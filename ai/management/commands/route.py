import json as json_module

from django.core.management.base import BaseCommand, CommandError

from ai.embeddings import get_embedder
from ai.router.service import route_query
from ai.tenant_settings.selectors import settings_for
from tenants.commands import tenant_from_slug


class Command(BaseCommand):
    help = "Route a query for a tenant: the decision, the cache threshold it implies, and the nearest examples."

    def add_arguments(self, parser):
        parser.add_argument("query")
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, query: str, tenant: str, json: bool, **options):
        tenant_obj = tenant_from_slug(tenant)
        if not query.strip():
            raise CommandError("The query is empty.")
        embedder = get_embedder()
        settings = settings_for(tenant_obj)
        decision = route_query(
            tenant=tenant_obj,
            query=query,
            vector=embedder.embed([query]).vectors[0],
            embedder_id=embedder.id,
            settings=settings,
        )
        threshold = None if decision.cache_strategy == "bypass" else settings.threshold_for(decision.confidence)
        if json:
            payload = {
                **decision.as_dict(),
                "source": decision.source,
                "fallbacks": list(decision.fallbacks),
                "cache_threshold": threshold,
                "neighbours": [n.__dict__ for n in decision.neighbours],
            }
            self.stdout.write(json_module.dumps(payload, indent=2))
            return
        d = decision
        self.stdout.write(
            f"intent {d.intent}  complexity {d.complexity}  model {d.model} (then {', '.join(d.fallbacks) or '-'})\n"
            f"cache {d.cache_strategy}  threshold {threshold if threshold is not None else '-'}  "
            f"confidence {d.confidence:.3f}  ({d.source}{': ' + d.reason if d.reason else ''})\n"
            "nearest examples:"
        )
        for n in d.neighbours:
            self.stdout.write(f"  {n.similarity:.3f}  {n.intent:9} {n.complexity:6} {n.scope:6}  {n.text}")
