"""The audit trail of keys, budgets, routes and prices: who changed which field, from what, to what.

Built on django-simple-history (docs/decisions.md, 2026-11-30): each audited model has a typed
history table, one row per create, change or delete, holding the object's values then (its
secrets left out), who did it (``history_user`` for a signed-in person, ``history_api_key_id``
for an API key, ``history_actor`` a label that outlives both) and the changed fields with their
old and new values (``history_changes``).

What it guarantees:

- A tenant's history rows are tenant-owned under Row-Level Security like the rows they record
  (``TenantAuditRecord``, ``TenantOrGlobalAuditRecord``; ``EnableTenantRLS`` in their migrations).
- Only a write through the ORM that changes an audited field makes a row: a save that changes
  nothing, or only excluded fields (a key's ``last_used_at``), makes none. The request path's
  ``QuerySet.update`` of ``last_used_at`` sends no signal at all.
- Fields named in ``excluded_fields`` (hashes, prefixes, webhook secrets) are never copied.

What it does not: ``QuerySet.update``, ``bulk_create`` and raw SQL bypass it (none of them
writes an audited field of these models today); the actor is whatever the innermost
``acting_as`` says, else the process default (``command <name>`` under manage.py), else "system".
"""

import datetime
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal

from django.db import models
from simple_history.models import HistoricalRecords
from simple_history.signals import pre_create_historical_record

from tenants.rls import owner_writes
from tenants.scoping import TenantOrGlobalModel, TenantOwnedModel

SYSTEM = "system"
HISTORY_TYPES = {"+": "created", "~": "changed", "-": "deleted"}


@dataclass(frozen=True)
class Actor:
    """Who is making changes: a person (``user``), an API key (``api_key_id``), or a process (``label``)."""

    label: str = SYSTEM
    user: object = None
    api_key_id: int | None = None


_actor: ContextVar[Actor | None] = ContextVar("saascore_audit_actor", default=None)
_process_default = Actor()


def current_actor() -> Actor:
    return _actor.get() or _process_default


@contextmanager
def acting_as(*, user=None, api_key=None, label: str | None = None) -> Iterator[Actor]:
    """Changes made inside are recorded as ``user``'s (the admin), ``api_key``'s (the API) or ``label``'s."""
    if label is None:
        label = f"admin {user.get_username()}" if user is not None else f"api key {api_key.pk}"
    actor = Actor(label=label, user=user, api_key_id=getattr(api_key, "pk", None))
    token = _actor.set(actor)
    try:
        yield actor
    finally:
        _actor.reset(token)


def set_process_actor(label: str) -> None:
    """The actor of a whole process when nothing narrower says (manage.py: ``command <name>``)."""
    global _process_default
    _process_default = Actor(label=label[:100])


def _jsonable(field: models.Field, value):
    """The value as the database holds it, in JSON: a Decimal to its places, a time in ISO 8601."""
    if isinstance(field, models.DecimalField) and value is not None:
        return str(Decimal(value).quantize(Decimal(1).scaleb(-field.decimal_places)))
    if value is None or isinstance(value, bool | int | float | str | list | dict):
        return value
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


class AuditRecord(models.Model):
    """The columns every history row has beside simple-history's own."""

    history_actor = models.CharField(max_length=100, default=SYSTEM)
    history_api_key_id = models.BigIntegerField(null=True, blank=True)
    history_changes = models.JSONField(default=dict, blank=True, help_text="field: [old, new]")

    class Meta:
        abstract = True

    @property
    def change_kind(self) -> str:
        return HISTORY_TYPES.get(self.history_type, self.history_type)


class TenantAuditRecord(AuditRecord, TenantOwnedModel):
    class Meta:
        abstract = True


class TenantOrGlobalAuditRecord(AuditRecord, TenantOrGlobalModel):
    class Meta:
        abstract = True


class AuditedHistory(HistoricalRecords):
    """simple-history's ``HistoricalRecords``, recording only real changes, with their diff and actor."""

    # Not audited on any model: the row's own id and bookkeeping stamps.
    _NOT_COMPARED = frozenset({"id", "tenant"})

    def __init__(self, *, base: type[AuditRecord], excluded_fields: list[str], verbose_name: str) -> None:
        super().__init__(
            bases=[base],
            excluded_fields=excluded_fields,
            verbose_name=verbose_name,
            verbose_name_plural=verbose_name + "s",
            history_id_field=models.BigAutoField(primary_key=True),
            get_user=lambda **kwargs: current_actor().user,
        )

    def finalize(self, sender, **kwargs) -> None:
        super().finalize(sender, **kwargs)
        if sender is self.cls:
            history_model = getattr(sender, self.manager_name).model
            pre_create_historical_record.connect(self._stamp, sender=history_model, weak=False)

    def _compared(self, instance) -> list[models.Field]:
        return [f for f in self.fields_included(instance) if f.name not in self._NOT_COMPARED]

    def create_historical_record(self, instance, history_type: str, using=None) -> None:
        fields = self._compared(instance)
        if history_type == "~":
            previous = getattr(instance, self.manager_name).order_by("-history_date", "-history_id").first()
            if previous is None:
                changes = {}  # no earlier record to compare with: this one is the first state known
            else:
                changes = {
                    f.name: [_jsonable(f, getattr(previous, f.attname)), _jsonable(f, getattr(instance, f.attname))]
                    for f in fields
                    if getattr(previous, f.attname) != getattr(instance, f.attname)
                }
                if not changes:
                    return  # nothing audited changed (or only excluded fields): no row
        else:
            values = {f.name: _jsonable(f, getattr(instance, f.attname)) for f in fields}
            changes = {k: [None, v] if history_type == "+" else [v, None] for k, v in values.items()}
        instance._audit_changes = changes
        try:
            super().create_historical_record(instance, history_type, using=using)
        finally:
            del instance._audit_changes

    @staticmethod
    def _stamp(sender, instance, history_instance, **kwargs) -> None:
        actor = current_actor()
        history_instance.history_actor = actor.label
        history_instance.history_api_key_id = actor.api_key_id
        history_instance.history_changes = instance._audit_changes


def baseline_history(app_label: str, model_name: str, *, rls: bool):
    """A migration step: one history row per existing object, its state when the trail began.

    Later changes are compared with it; without it a first change could name no old values.
    ``rls``: the tables are under forced Row-Level Security, lifted for the step (owner_writes).
    """

    def forwards(apps, schema_editor) -> None:
        source = apps.get_model(app_label, model_name)._meta
        history = apps.get_model(app_label, f"Historical{model_name}")._meta
        copied = {f.column for f in source.concrete_fields}
        columns = [f.column for f in history.concrete_fields if f.column in copied]
        names = ", ".join(f'"{c}"' for c in columns)
        sql = (
            f'INSERT INTO "{history.db_table}" ({names}, history_date, history_type, history_actor, history_changes) '
            f"SELECT {names}, now(), '~', 'audit baseline', '{{}}'::jsonb FROM \"{source.db_table}\""
        )
        if not rls:
            schema_editor.execute(sql)
            return
        with owner_writes(schema_editor, source.db_table), owner_writes(schema_editor, history.db_table):
            schema_editor.execute(sql)

    return forwards
