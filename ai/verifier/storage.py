"""Storing a trained verifier: one ``VerifierModel`` row, its model in the row's blob.

A cross-encoder's blob holds its ONNX graph (23 MB int8, 90 MB fp32), more than a served
statement is given (``DATABASE_STATEMENT_TIMEOUT_MS``, 5 s, and the client's bound): the write
runs in one transaction whose statement timeout and client wait are widened for it alone.
Reading the active row back is one 23 MB SELECT per worker per activation (ai/verifier/live.py).
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections, transaction

from ai.verifier.models import VerifierModel
from tenants.scoping import UNSCOPED_ALIAS, tenant_scope, unscoped_scope

WRITE_SECONDS = 300


@contextmanager
def long_write(seconds: float = WRITE_SECONDS, *, using: str = "default") -> Iterator[None]:
    """A transaction whose statements and client waits may take ``seconds`` (a model's blob)."""
    wrapper = connections[using]
    configured = wrapper.settings_dict.get("CLIENT_TIMEOUT")

    def bound(value: float | None) -> None:
        wrapper.settings_dict["CLIENT_TIMEOUT"] = value
        if wrapper.connection is not None and hasattr(wrapper.connection, "wait_timeout"):
            wrapper.connection.wait_timeout = value

    bound(seconds + 1 if configured else None)
    try:
        with transaction.atomic(using=using):
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(int(seconds * 1000))])
            yield
    finally:
        bound(configured)


def verifier_store(trained, *, tenant_id: int | None = None, activate: bool) -> VerifierModel:
    """Save a trained verifier (boosting or cross-encoder) as a row of its tenant, or global (an
    operator's unscoped write); ``activate``: the live one from now on, its predecessor retired in
    the same transaction."""
    blob = trained.to_bytes()
    scope, using = (tenant_scope(tenant_id), "default") if tenant_id else (unscoped_scope(), UNSCOPED_ALIAS)
    with scope, long_write(using=using):
        manager = VerifierModel.objects
        if activate:
            mine = manager.for_tenant(tenant_id) if tenant_id else manager.global_rows()
            mine.filter(active=True).update(active=False)
        return manager.create(
            tenant_id=tenant_id,
            embedder_id=trained.embedder_id,
            blob=blob,
            min_score=trained.min_score,
            active=activate,
            report=trained.report,
        )
