"""Billing writes: the usage ledger (admission and budgets: billing/admission.py).

The ledger is append-only: ``usage_record`` inserts with ON CONFLICT DO NOTHING
on (tenant, request_id), so a retried request is billed once. The same statement
adds a paid row's cost to the tenant's month counter (``SpendCounter``), so the
counter moves exactly when a row goes in: once, however often it is replayed.
If PostgreSQL cannot take the row (down, timed out, read-only) it goes to a
local spool and is written later, counter included, by any worker of the host
or ``billing_flush_spool`` (billing/spool.py). An error of the row itself is a
bug and is raised.
"""

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.db import InterfaceError, InternalError, OperationalError, ProgrammingError, connection

from billing import spool_retry
from billing.budgets import budget_alert_check, key_alert_check
from billing.models import KeySpendCounter, SpendCounter, UsageRecord
from billing.spool import DrainReport, Unavailable, drain, spool
from catalog.pricing import ZERO, acost_of, cost_of
from saascore import metrics
from tenants.models import ApiKey, Tenant
from tenants.scoping import tenant_scope

logger = logging.getLogger("saascore.billing")


@dataclass(frozen=True)
class Usage:
    """What one request consumed, as the pipeline reports it."""

    request_id: str
    source: str
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    router_model: str = ""
    router_input_tokens: int = 0
    router_output_tokens: int = 0
    embedding_model: str = ""
    embedding_tokens: int = 0
    # For a cache hit: the original answer's tokens, priced at `model` (the routed one) as `saved`.
    saved_input_tokens: int = 0
    saved_output_tokens: int = 0
    cached_question: str = ""
    end_user: str = ""  # the caller's end user (``user_id``, OpenAI's ``user``), for attribution
    cache_key: str = ""  # the cache entry that answered or was stored (feedback evicts it)
    asked_question: str = ""  # a hit's question, when it holds no personal data (feedback labels it)
    api_key_id: int | None = None  # the API key that asked
    tags: tuple[str, ...] = ()  # the caller's tags (sanitised: ai/api/caller.py)


def _charges(usage: Usage) -> tuple[list[tuple[str, int, int]], tuple[str, int, int]]:
    """What a request is charged for (its model, the router, the embedding), and what it saved:
    (model, input tokens, output tokens) each."""
    charged = [
        (usage.model, usage.input_tokens, usage.output_tokens),
        (usage.router_model, usage.router_input_tokens, usage.router_output_tokens),
        (usage.embedding_model, usage.embedding_tokens, 0),
    ]
    return charged, (usage.model, usage.saved_input_tokens, usage.saved_output_tokens)


def price_usage(usage: Usage, when: datetime) -> tuple[Decimal, Decimal]:
    """(cost, saved) of a request at the prices in force at ``when``."""
    charged, saved = _charges(usage)
    return sum((cost_of(*charge, when) for charge in charged), ZERO), cost_of(*saved, when)


async def aprice_usage(usage: Usage, when: datetime) -> tuple[Decimal, Decimal]:
    """``price_usage`` on the event loop: prices this process has not read yet are read off it."""
    charged, saved = _charges(usage)
    return sum([await acost_of(*charge, when) for charge in charged], ZERO), await acost_of(*saved, when)


# PostgreSQL cannot take a row now: down or restarting, out of connections, a timeout, or
# read-only after a failover (SQLSTATE 25006 arrives as InternalError). Such a row is spooled.
# Errors of the row itself (DataError, IntegrityError, ProgrammingError) are bugs: they propagate.
POSTGRES_UNAVAILABLE = (OperationalError, InterfaceError, InternalError)
_FIELDS = [field for field in UsageRecord._meta.concrete_fields if not field.primary_key]
# A tenant's rows, and the cost of those that went in on the month's counters, in one statement.
_COUNTER = SpendCounter._meta.db_table
_KEY_COUNTER = KeySpendCounter._meta.db_table
_KEYS = ApiKey._meta.db_table
_ROW = f"({', '.join(['%s'] * len(_FIELDS))})"
# The rows; their cost on the tenant's month counter, and on the period counters (month and day)
# of each key that has a budget; what each key counter then holds, with the key's budget.
_INSERT = f"""
WITH inserted AS (
    INSERT INTO {UsageRecord._meta.db_table} ({", ".join(field.column for field in _FIELDS)})
    VALUES {{rows}} ON CONFLICT (tenant_id, request_id) DO NOTHING
    RETURNING tenant_id, request_id, cost, created_at, api_key_id
), counted AS (
    INSERT INTO {_COUNTER} (tenant_id, period, committed)
    SELECT tenant_id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM'), sum(cost) FROM inserted
    WHERE cost > 0 GROUP BY 1, 2
    ON CONFLICT (tenant_id, period) DO UPDATE SET committed = {_COUNTER}.committed + EXCLUDED.committed
    RETURNING committed
), key_added AS (
    SELECT i.tenant_id, i.api_key_id, p.period, sum(i.cost) AS added
    FROM inserted i JOIN {_KEYS} k ON k.id = i.api_key_id AND k.budget_usd IS NOT NULL
    CROSS JOIN LATERAL (VALUES (to_char(i.created_at AT TIME ZONE 'UTC', 'YYYY-MM')),
                               (to_char(i.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'))) AS p (period)
    WHERE i.cost > 0 GROUP BY 1, 2, 3
), key_counted AS (
    INSERT INTO {_KEY_COUNTER} (tenant_id, api_key_id, period, committed)
    SELECT tenant_id, api_key_id, period, added FROM key_added
    ON CONFLICT (tenant_id, api_key_id, period)
    DO UPDATE SET committed = {_KEY_COUNTER}.committed + EXCLUDED.committed
    RETURNING api_key_id, period, committed
)
SELECT (SELECT coalesce(array_agg(request_id), '{{{{}}}}') FROM inserted),
       (SELECT sum(cost) FROM inserted), (SELECT max(committed) FROM counted),
       (SELECT coalesce(json_agg(json_build_array(c.api_key_id, c.period, c.committed::text, a.added::text,
                                                  k.budget_usd::text, k.soft_alert_ratio::text, k.budget_period)),
                        '[]')
        FROM key_counted c JOIN key_added a USING (api_key_id, period) JOIN {_KEYS} k ON k.id = c.api_key_id)
"""


def period_of(when: datetime) -> str:
    """The month a request counts in: YYYY-MM, UTC."""
    return when.astimezone(UTC).strftime("%Y-%m")


def insert_rows(tenant_id: int, rows: list[dict]) -> set[str]:
    """Insert-or-ignore a tenant's rows on the ledger's unique key, in one statement that also
    adds their cost to the month's counter; returns the request ids that went in (the others
    were there already). Runs in the caller's transaction, inside the tenant's scope.

    Raw SQL because the ORM's ``bulk_create(ignore_conflicts=True)`` cannot say which
    went in (the spool's drain reports replays the key absorbed), nor count them on the
    counter in the same statement.
    """
    values = []
    for row in rows:
        record = UsageRecord(**row)
        values += [field.get_db_prep_save(field.pre_save(record, True), connection) for field in _FIELDS]
    with tenant_scope(tenant_id), connection.cursor() as cursor:
        cursor.execute(_INSERT.format(rows=", ".join([_ROW] * len(rows))), values)
        inserted, added, committed, key_counters = cursor.fetchone()
    if committed is not None and added:
        budget_alert_check(tenant_id=tenant_id, before=committed - added, after=committed)
    for key_id, period, after, key_added, limit, ratio, budget_period in _json(key_counters):
        if (len(period) == 10) == (budget_period == "daily"):  # the counter of the key's own period
            key_alert_check(
                tenant_id=tenant_id, api_key_id=key_id, period=period, limit=Decimal(limit),
                ratio=Decimal(ratio), before=Decimal(after) - Decimal(key_added), after=Decimal(after),
            )  # fmt: skip
    return set(inserted)


def _json(value) -> list:
    return json.loads(value) if isinstance(value, str) else value


def _insert(row: dict) -> bool:
    """One row: True if it went in, False if it was there already."""
    return bool(insert_rows(row["tenant_id"], [row]))


def usage_record(*, tenant: Tenant, usage: Usage, when: datetime | None = None) -> dict:
    """Record one request's usage; returns the row's values (cost and saved in Decimal).

    If PostgreSQL cannot take the row now, it waits in the local spool
    (billing/spool.py) and a background retry writes it later. If it cannot
    even price the row, the row waits unpriced and is priced, at ``when``, as it
    is written; the values returned then say cost and saved 0.
    """
    when = when or datetime.now(UTC)
    row = {**usage.__dict__, "tenant_id": tenant.pk, "created_at": when, "cost": ZERO, "saved": ZERO}
    try:
        row["cost"], row["saved"] = price_usage(usage, when)
    except POSTGRES_UNAVAILABLE as exc:
        logger.error("usage row for request %s spooled unpriced, PostgreSQL unavailable: %s", usage.request_id, exc)
        spool_unwritten({**row, "cost": None, "saved": None})
        return row
    try:
        _insert(row)
    except POSTGRES_UNAVAILABLE as exc:
        logger.error("usage row for request %s spooled, PostgreSQL unavailable: %s", usage.request_id, exc)
        spool_unwritten(row)
    else:
        spool_retry.drain_leftovers(spool_flush)
    return row


def spool_unwritten(row: dict) -> bool:
    """Keep a row PostgreSQL could not take in the local spool (fsync'd), for a later drain.
    False: the disk refused it too."""
    try:
        spool(row)
    except OSError as exc:  # the disk refuses too: this log line is the row's last record
        metrics.USAGE_SPOOL.labels(event="lost").inc()
        values = {key: str(value) for key, value in row.items() if key not in ("cached_question", "asked_question")}
        logger.critical("usage row NOT recorded, the spool refused it (%s): %s", exc, values)
        return False
    metrics.USAGE_SPOOL.labels(event="spooled").inc()
    spool_retry.retry_later(spool_flush)
    return True


def spool_flush(*, wait: bool = False, requeue: bool = False, count: bool = True) -> DrainReport:
    """Write the spooled rows into the ledger (idempotent: the unique key absorbs replays)."""
    report = drain(_write_spooled, wait=wait, requeue=requeue, count=count)
    metrics.USAGE_SPOOL.labels(event="written").inc(report.written)
    metrics.USAGE_SPOOL.labels(event="duplicate").inc(report.duplicates)
    metrics.USAGE_SPOOL.labels(event="set_aside").inc(report.set_aside)
    return report


_USAGE_FIELDS = tuple(Usage.__dataclass_fields__)


def _write_spooled(row: dict) -> bool:
    """Write one spooled row. PostgreSQL unavailable, or refusing every row alike (a missing grant
    or migration: ProgrammingError), becomes ``Unavailable``: the drain stops and keeps the rows,
    rather than set aside every one of them; an error of this row counts an attempt against it."""
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    try:
        if row["cost"] is None:  # spooled before it could be priced: price it at its own time
            usage = Usage(**{name: row[name] for name in _USAGE_FIELDS if name in row})  # older rows lack some
            row["cost"], row["saved"] = price_usage(usage, row["created_at"])
        row.update(cost=Decimal(row["cost"]), saved=Decimal(row["saved"]))
        return _insert(row)
    except (*POSTGRES_UNAVAILABLE, ProgrammingError) as exc:
        raise Unavailable(str(exc).strip()) from exc
