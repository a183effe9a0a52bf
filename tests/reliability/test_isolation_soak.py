"""Isolation soak: 20 tenants x 4 concurrent clients over real HTTP (gunicorn, 2 workers).

Every tenant's documents carry canary strings of its own, and every tenant asks the
same questions (so a cache or retrieval that crossed tenants would hand one tenant
another's canary), questions that name its own canary, and one that names another
tenant's. The questions repeat and are paraphrased, so that the exact and the semantic
tier both answer. Zero answers, citations or hits may carry another tenant's canary.
"""

import json
import re
from collections import Counter

from tests.reliability.load import Client, Load
from tests.reliability.world import World, ledger, starter_router, world
from tests.serving import http

TENANTS = 20
CLIENTS_PER_TENANT = 4
CANARY = re.compile(r"CANARY-[a-z0-9-]+?-[0-9a-f]{8}")


def questions(me: World, other: World) -> list[dict]:
    """What each client of ``me`` asks, twice over: shared questions, paraphrases, canaries."""
    asked = [
        "How do I get a refund?",  # every tenant asks this very text: exact repeats
        "How can I get a refund?",  # a paraphrase: semantic hits
        "What is the refund authorisation code?",
        "What's the refund authorization code?",
        "How do I set up two-factor authentication?",
        "How can I set up two-factor authentication?",
        f"Where do I quote the refund authorisation code {me.canaries[0]}?",
        f"Where do I quote the refund authorisation code {other.canaries[0]}?",  # a guess at another's secret
        "When is the support desk open?",
    ]
    return [{"query": query} for query in asked * 2]


def test_twenty_tenants_four_clients_each_never_see_each_other(serve, plaintext):
    starter_router()
    worlds = [world(f"soak{n:02d}", plaintext.keys) for n in range(TENANTS)]
    by_id = {w.tenant.pk: w for w in worlds}
    every_canary = {canary: w.slug for w in worlds for canary in w.canaries}
    clients = []
    for n, me in enumerate(worlds):
        asked = questions(me, worlds[(n + 1) % TENANTS])
        for c in range(CLIENTS_PER_TENANT):
            shifted = asked[c * 2 :] + asked[: c * 2]  # the four clients of a tenant interleave
            clients.append(Client(f"{me.slug}/{c}", me.tenant.pk, me.key, shifted, once=True))

    with serve(workers=2) as server:
        answers = Load(server.base, clients).start().join()

        # Another tenant's ids over HTTP: as if they did not exist.
        for n, me in enumerate(worlds):
            other = worlds[(n + 1) % TENANTS]
            headers = {"Authorization": f"Bearer {me.key}", "Content-Type": "application/json"}
            document_id = next(iter(other.documents))
            for method, path, body in [
                ("GET", f"/api/v1/documents/{document_id}", None),
                ("PATCH", f"/api/v1/documents/{document_id}", {"title": "taken over"}),
                ("DELETE", f"/api/v1/documents/{document_id}", None),
                ("GET", f"/api/v1/keys/{other.api_key.pk}", None),
                ("PATCH", f"/api/v1/keys/{other.api_key.pk}", {"name": "taken over"}),
                ("DELETE", f"/api/v1/keys/{other.api_key.pk}", None),
            ]:
                status, _, reply = http(method, server.base + path, headers, body and json.dumps(body).encode())
                assert status == 404, (method, path, status, reply)
            status, _, listed = http("GET", f"{server.base}/api/v1/documents", headers)
            assert status == 200 and {d["id"] for d in listed} == set(me.documents)
            status, _, listed = http("GET", f"{server.base}/api/v1/keys", headers)
            assert status == 200 and [k["id"] for k in listed] == [me.api_key.pk]
            # The key's own secret, edited to name the other tenant: no such key there.
            forged = f"sc_{other.tenant.pk}_{me.key.split('_', 2)[2]}"
            status, _, _ = http("GET", f"{server.base}/api/v1/tenant", {"Authorization": f"Bearer {forged}"})
            assert status == 401
        for w in worlds:  # nothing of another tenant was changed by those requests
            status, _, own = http("GET", f"{server.base}/api/v1/tenant", {"Authorization": f"Bearer {w.key}"})
            assert status == 200 and own["slug"] == w.slug
            status, _, listed = http("GET", f"{server.base}/api/v1/documents", {"Authorization": f"Bearer {w.key}"})
            assert {d["id"]: d["title"] for d in listed} == w.documents

    assert len(answers) == TENANTS * CLIENTS_PER_TENANT * len(questions(worlds[0], worlds[1]))
    assert Counter(a.status for a in answers) == Counter({200: len(answers)})
    tiers: dict[str, Counter] = {w.slug: Counter() for w in worlds}
    own_canary_seen: Counter = Counter()
    for answer in answers:
        me = by_id[answer.tenant_id]
        tiers[me.slug][answer.cache] += 1
        text = json.dumps(answer.body)
        foreign = {c: every_canary.get(c, "?") for c in CANARY.findall(text) if c not in me.canaries}
        assert not foreign, f"{me.slug} asked {answer.query!r} and got {foreign} ({answer.cache})"
        own_canary_seen[me.slug] += any(c in text for c in me.canaries)
        for citation in answer.body["citations"]:
            assert me.documents.get(citation["document_id"]) == citation["document"], (me.slug, citation)

    for w in worlds:  # each tenant's answers came from its own documents, through every tier
        assert own_canary_seen[w.slug], f"{w.slug} never got its own canary: the check above proved nothing"
        assert tiers[w.slug]["HIT-EXACT"] and tiers[w.slug]["HIT-SEMANTIC"] and tiers[w.slug]["MISS"], tiers[w.slug]
        rows = ledger(w.tenant)
        answered = {a.request_id for a in answers if a.tenant_id == w.tenant.pk}
        assert sorted(r.request_id for r in rows) == sorted(answered)  # one row per answer, each its own
        asked = {q["query"] for q in questions(w, worlds[(worlds.index(w) + 1) % TENANTS])}
        for row in rows:  # a hit served a question this tenant asked, never another's
            assert not row.cached_question or row.cached_question in asked, (w.slug, row.cached_question)
