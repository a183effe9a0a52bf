"""PostgreSQL restarted under load: the test server itself (pg_ctl stop, then start).

While it is down, exact and semantic hits keep being answered from Redis (keys verified
from their Redis records, settings from the row cache), a miss that needs retrieval gets
503 with Retry-After (never a bare 500), and answers whose model call was already under
way still reach the client. Their ledger rows wait in the usage spool; once PostgreSQL
is back and the spool is drained the ledger has exactly one row per answer.
Reservations that could not be released expire.
"""

import os
import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connections

from billing.services import spool_flush
from saascore.embedded import EmbeddedPostgres, embedded_paths
from tests.openai_server import OpenAIServer
from tests.reliability.load import Client, Load, post_query
from tests.reliability.world import (
    committed,
    ledger,
    live_reservations,
    reservation_rows,
    route_everything,
    set_budget,
    starter_router,
    world,
)
from tests.serving import wait_until

RESERVATION_SECONDS = 3
QUESTIONS = [{"query": "How do I get a refund?"}, {"query": "When is the support desk open?"}]


@pytest.fixture
def postgres():
    """The suite's own embedded PostgreSQL, which this test stops and starts again."""
    if os.environ.get("DATABASE_URL"):
        pytest.fail("This test restarts PostgreSQL: run it against the embedded server (DATABASE_URL unset).")
    server = EmbeddedPostgres(embedded_paths())
    yield server
    server.start()  # whatever happened, the rest of the suite gets its database back
    connections.close_all()


def test_postgres_restarted_under_load(serve, plaintext, postgres, settings):
    starter_router()
    victim = world("pgvictim", plaintext.keys)  # its model call is under way when PostgreSQL stops
    route_everything(victim.tenant, "claude-3-haiku")
    loaders = [world(f"pgload{n}", plaintext.keys) for n in range(2)]
    for w in [victim, *loaders]:
        set_budget(
            w.tenant, monthly_spend_limit=Decimal("100"), max_request_cost=Decimal("0.05"),
            requests_per_minute=1_000_000,
        )  # fmt: skip
    for w in loaders:
        route_everything(w.tenant, "local-extractive")  # the load never calls the upstream
    clients = [
        Client(f"{w.slug}/{c}", w.tenant.pk, w.key, QUESTIONS[c:] + QUESTIONS[:c]) for w in loaders for c in (0, 1)
    ]  # after their first round, hits
    misser = loaders[0]  # and one caller whose every question is a miss that needs retrieval
    clients.append(
        Client("miss", misser.tenant.pk, misser.key, [{"query": "How do I get a refund?", "cache": "bypass"}])
    )
    held = []  # the victim's requests: their model calls wait until the test releases them
    for n in range(2):
        body = {"query": f"Refund for order {n}?", "cache": "bypass"}
        held.append(Client(f"victim/{n}", victim.tenant.pk, victim.key, [body], once=True))

    with OpenAIServer() as upstream:
        env = {"ANTHROPIC_API_KEY": "sk-test-upstream", "ANTHROPIC_BASE_URL": upstream.base_url}
        ai = {"SPEND_RESERVATION_SECONDS": RESERVATION_SECONDS}
        with serve(workers=2, ai=ai, **env) as server, Load(server.base, clients) as load:
            load.wait_count(20, since=0, what="answers before the restart")
            replies = [
                upstream.reply(content="Quote your order number.", usage=(300, 40), hold=threading.Event())
                for _ in held
            ]
            victims = Load(server.base, held).start()
            for reply in replies:
                assert reply.arrived.wait(timeout=60), "the victim's model call never came"

            postgres.stop()
            try:
                down = load.mark()
                for reply in replies:
                    reply.hold.set()
                answered_while_down = victims.join(timeout=60)
                load.wait(
                    lambda new: sum(a.status == 503 for a in new) >= 5
                    and sum(a.status == 200 and a.cache.startswith("HIT") for a in new) >= 20,
                    since=down, timeout=60, what="misses refused and hits answered",
                )  # fmt: skip
                while_down = load.answers[down:]
            finally:
                postgres.start()
            connections.close_all()  # the test's own connections died with the server
            up = load.mark()
            load.wait(lambda new: sum(a.status == 200 for a in new) >= 20, since=up, timeout=90, what="recovery")
            answers = load.stop()

            wait_until(  # the reservations PostgreSQL was down to release expire
                lambda: all(live_reservations(w.tenant) == 0 for w in [victim, *loaders]),
                timeout=RESERVATION_SECONDS + 10, what="reservations to expire",
            )  # fmt: skip
            upstream.default.usage = (300, 40)
            status, _, after, _ = post_query(
                server.base, victim.key, {"query": "Can I get a refund?", "cache": "bypass"}
            )
            assert status == 200, after  # admitted again: nothing of the dead requests holds its budget
            assert reservation_rows(victim.tenant) == 0

    settings.BILLING_SPOOL_DIR = server.spool
    report = spool_flush(wait=True)
    assert (report.waiting, report.dead_letter, report.stopped) == (0, 0, ""), report

    # While PostgreSQL was down: hits answered; only misses refused, 503 with Retry-After and the
    # JSON error, never a 500.
    for answer in answers:
        if answer.status != 200:
            assert answer.client == "miss", answer
            assert answer.status == 503 and answer.headers.get("Retry-After"), answer
            assert answer.body["error"]["code"] == "database_unavailable", answer
    assert {a.cache for a in while_down if a.status == 200} <= {"HIT-EXACT", "HIT-SEMANTIC"}
    assert Counter(a.status for a in answered_while_down) == Counter({200: 2})
    # The ledger: exactly the answered requests, the spooled ones included, and the counter agrees.
    victim_ids = {a.request_id for a in answered_while_down} | {after["request_id"]}
    assert sorted(r.request_id for r in ledger(victim.tenant)) == sorted(victim_ids)
    assert all(r.cost > 0 and r.model == "claude-3-haiku" for r in ledger(victim.tenant))
    assert committed(victim.tenant) == sum(r.cost for r in ledger(victim.tenant))  # each counted once
    for w in loaders:
        answered = [a.request_id for a in answers if a.tenant_id == w.tenant.pk and a.status == 200]
        assert sorted(r.request_id for r in ledger(w.tenant)) == sorted(answered)
