import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ai.rag.ingestion import document_ingest
from ai.rag.models import Document
from ai.rag.services import documents_bulk_upsert
from tenants.commands import tenant_from_slug
from tenants.scoping import tenant_scope


class Command(BaseCommand):
    help = "Load a JSON-lines corpus as a tenant's documents and ingest them now (with progress)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--text-field", required=True, help="field holding the document text")
        parser.add_argument("--title-field", required=True, help="field holding a unique title")
        parser.add_argument("--source-field", help="field holding a link or reference")
        parser.add_argument("--limit", type=int)

    def handle(self, *args, file: Path, tenant: str, text_field, title_field, source_field, limit, **options):
        if not file.exists():
            raise CommandError(f"No such file: {file}")
        tenant_obj = tenant_from_slug(tenant)
        rows = []
        for number, line in enumerate(file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                row = {"title": str(record[title_field])[:300], "content": str(record[text_field])}
            except (ValueError, KeyError, TypeError) as exc:
                raise CommandError(f"line {number}: {exc!r}") from exc
            if source_field and record.get(source_field):
                row["source"] = str(record[source_field])[:1000]
            rows.append(row)
            if limit and len(rows) >= limit:
                break
        created, updated = documents_bulk_upsert(tenant=tenant_obj, rows=rows)
        with tenant_scope(tenant_obj):
            ids = list(Document.objects.for_tenant(tenant_obj).values_list("id", flat=True))
        for done, document_id in enumerate(ids, 1):
            document_ingest(tenant_id=tenant_obj.pk, document_id=document_id)
            if done % 25 == 0 or done == len(ids):
                sys.stderr.write(f"ingested {done}/{len(ids)}\n")
        self.stdout.write(f"{created} created, {updated} updated, {len(ids)} documents ready for tenant {tenant}")
