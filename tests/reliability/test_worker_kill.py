"""A gunicorn worker SIGKILLed in the middle of a request.

Under load: the master replaces the worker and the load goes on; the request the kill cut
off got no answer and costs nothing, but its reservation was never released: the tenant,
near its limit, is refused (402) until the reservation expires, and admitted again after.
Every hit the killed worker answered is billed once: its row was committed, or is replayed
from the worker's journal (billing/journal.py).

A single-flight leader: its followers in the other worker see its lock expire, and one of
them takes the lead.
"""

import os
import signal
import threading
from collections import Counter
from decimal import Decimal

from billing.services import spool_flush
from tests.openai_server import OpenAIServer, Reply
from tests.reliability.load import Client, Load, post_query
from tests.reliability.workers import holder_of_port, per_worker
from tests.reliability.world import (
    ledger,
    live_reservations,
    reservation_rows,
    route_everything,
    set_budget,
    starter_router,
    world,
)
from tests.serving import wait_until

RESERVATION_SECONDS = 6
QUESTIONS = [{"query": "How do I get a refund?"}, {"query": "How do I set up two-factor authentication?"}]


def test_a_worker_killed_mid_request_leaves_no_charge_and_its_reservation_expires(serve, plaintext, settings):
    starter_router()
    victim = world("killvictim", plaintext.keys)
    route_everything(victim.tenant, "claude-3-haiku")
    # Room for one request's reservation, not two: the dead request's reservation refuses the next.
    set_budget(victim.tenant, monthly_spend_limit=Decimal("0.05"), max_request_cost=Decimal("0.04"))
    loaders = [world(f"killload{n}", plaintext.keys) for n in range(2)]
    for w in loaders:
        route_everything(w.tenant, "local-extractive")
        set_budget(w.tenant, monthly_spend_limit=Decimal("100"), requests_per_minute=1_000_000)
    clients = [
        Client(f"{w.slug}/{c}", w.tenant.pk, w.key, QUESTIONS[c:] + QUESTIONS[:c]) for w in loaders for c in (0, 1)
    ]
    ask = {"query": "How do I get a refund for my order?", "cache": "bypass"}

    with OpenAIServer() as upstream:
        env = {"ANTHROPIC_API_KEY": "sk-test-upstream", "ANTHROPIC_BASE_URL": upstream.base_url}
        with (
            serve(workers=2, ai={"SPEND_RESERVATION_SECONDS": RESERVATION_SECONDS}, **env) as server,
            Load(server.base, clients) as load,
        ):
            load.wait_count(20, since=0, what="answers before the kill")
            reply = upstream.reply(content="Quote your order number.", hold=threading.Event())
            victims = Load(server.base, [Client("victim", victim.tenant.pk, victim.key, [ask], once=True)]).start()
            assert reply.arrived.wait(timeout=60), "the victim's model call never came"
            workers = server.workers()
            killed = holder_of_port(workers, reply.client_port)  # the worker waiting on that call
            os.kill(killed, signal.SIGKILL)
            (cut_off,) = victims.join(timeout=60)

            status, headers, refused, _ = post_query(server.base, victim.key, ask)
            assert status == 402 and int(headers["Retry-After"]) > 0, refused  # the dead request's reservation
            assert refused["error"]["details"]["in_flight_usd"] == "0.040000"

            wait_until(
                lambda: len(server.workers()) == 2 and killed not in server.workers(),
                timeout=60, what="the master to replace the worker",
            )  # fmt: skip
            replaced = load.mark()
            load.wait(lambda new: sum(a.status == 200 for a in new) >= 20, since=replaced, timeout=60, what="load")
            wait_until(
                lambda: all(live_reservations(w.tenant) == 0 for w in [victim, *loaders]),
                timeout=RESERVATION_SECONDS + 10, what="the dead requests' reservations to expire",
            )  # fmt: skip
            status, _, admitted, _ = post_query(server.base, victim.key, ask)
            assert status == 200, admitted
        reply.hold.set()  # the handler of the cut-off call may finish (nobody is listening)
    # The killed worker's hits answered before their commit are in its journal: a drain replays them.
    settings.BILLING_SPOOL_DIR = server.spool
    drained = spool_flush(wait=True)
    assert drained.set_aside == 0 and drained.waiting == 0, drained
    answers = load.answers

    assert cut_off.status is None, cut_off  # no answer: the connection died with the worker
    statuses = Counter(a.status for a in answers)
    assert set(statuses) <= {200, None} and statuses[200] >= 40, statuses  # the kill cut some off; no 5xx
    # Money: the cut-off request cost nothing; the admitted one is billed; no reservation is left.
    assert [r.request_id for r in ledger(victim.tenant)] == [admitted["request_id"]]
    assert reservation_rows(victim.tenant) == 0
    for w in loaders:  # every answer billed once; a row without an answer only for a request the kill cut off
        rows = {r.request_id for r in ledger(w.tenant)}
        answered = {a.request_id for a in answers if a.tenant_id == w.tenant.pk and a.status == 200}
        cut = sum(a.status is None for a in answers if a.tenant_id == w.tenant.pk)
        assert answered <= rows and len(rows - answered) <= cut, (len(rows - answered), cut)


LOCK_TTL = 2.0
MAX_CALLERS = 30
SURVIVING_FOLLOWERS = 3


def test_a_single_flight_leader_killed_mid_call_is_replaced_by_one_follower(serve, plaintext, tmp_path):
    """Identical cold questions: one leads, the rest follow, in both workers. The leader's
    worker is SIGKILLed during its model call; its lock, no longer renewed, expires; one
    follower of the other worker leads and calls the upstream once; the others get its answer."""
    starter_router()
    w = world("flight", plaintext.keys)
    route_everything(w.tenant, "claude-3-haiku")
    metrics = tmp_path / "metrics"
    ask = {"query": "How long do refunds take to arrive?"}
    with OpenAIServer() as upstream:
        held = upstream.reply(content="The first answer, never delivered.", hold=threading.Event())
        upstream.default = Reply(content="Refunds arrive within 14 days.", usage=(200, 20))
        env = {
            "ANTHROPIC_API_KEY": "sk-test-upstream", "ANTHROPIC_BASE_URL": upstream.base_url,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            "GUNICORN_THREADS": str(MAX_CALLERS),  # a follower holds its thread: none may queue behind them
        }  # fmt: skip
        with serve(workers=2, ai={"SINGLE_FLIGHT_LOCK_TTL": LOCK_TTL}, **env) as server:
            load = Load(server.base, [Client("leader", w.tenant.pk, w.key, [ask], once=True)]).start()
            assert held.arrived.wait(timeout=60), "the leader's model call never came"
            leader_worker = holder_of_port(server.workers(), held.client_port)

            def followers(*, elsewhere: bool = False) -> int:
                counts = per_worker(metrics, "saascore_cache_single_flight", outcome="follower")
                return int(sum(n for pid, n in counts.items() if not elsewhere or pid != leader_worker))

            while followers(elsewhere=True) < SURVIVING_FOLLOWERS:  # followers in both workers
                assert len(load.clients) < MAX_CALLERS, "the other worker took no follower"
                load.add(Client(f"follower/{len(load.clients)}", w.tenant.pk, w.key, [ask], once=True))
                wait_until(lambda: followers() == len(load.clients) - 1, timeout=30, what="the new follower")
            survivors = followers(elsewhere=True)
            os.kill(leader_worker, signal.SIGKILL)
            answers = load.join(timeout=120)
        held.hold.set()
        calls = len(upstream.chat_requests())

    answered = [a for a in answers if a.status == 200]
    assert len(answered) == survivors and all(a.status is None for a in answers if a.status != 200)
    assert calls == 2  # the killed leader's call, and the one follower's that took over
    assert {a.body["response"] for a in answered} == {"Refunds arrive within 14 days."}
    assert Counter(a.body["source"] for a in answered) == Counter({"llm": 1, "cache": survivors - 1})
    assert sorted(r.request_id for r in ledger(w.tenant)) == sorted(a.request_id for a in answered)
