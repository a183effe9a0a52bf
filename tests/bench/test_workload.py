"""The end-to-end benchmark's workload: seeded, reproducible, and made of the kinds it promises.

Runs on small data sets made here in the shapes of ../shared/data (so it needs
neither that folder nor services), and on the real ones too when they are there.
"""

import csv
import json
from collections import Counter

import pytest

from ai.cache.keys import normalise as product_normalise
from bench.workload import DATA_DIR, KINDS, Params, build_workload, normalise

SMALL = {"forum_paraphrase_pairs": 300, "forum_near_miss_pairs": 150}


def _made_data(folder):
    """qqp_dev.jsonl, banking77/train.csv and covid_faq/faq.jsonl, with made-up questions."""
    pairs = []
    for n in range(700):  # label 1: two phrasings; every 7th cluster gets a third through a second pair
        pairs.append(
            {
                "text_a": f"How do I fix problem {n} on my phone?",
                "text_b": f"What fixes problem {n} on a phone?",
                "label": 1,
            }
        )
        if n % 7 == 0:
            pairs.append(
                {
                    "text_a": f"What fixes problem {n} on a phone?",
                    "text_b": f"Any fix for phone problem {n}?",
                    "label": 1,
                }
            )
    for n in range(400):  # label 0: close wording, other meaning
        pairs.append({"text_a": f"Why is lake {n} so cold?", "text_b": f"Why is lake {n} so warm?", "label": 0})
    (folder / "qqp_dev.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    (folder / "banking77").mkdir()
    with (folder / "banking77" / "train.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "category"])
        for intent in range(77):
            writer.writerows([f"Question {k} about banking matter {intent}?", f"intent_{intent}"] for k in range(40))
    (folder / "covid_faq").mkdir()
    faq = [{"question": f"What about health topic {n}?", "answer": f"Answer {n}.", "link": "x"} for n in range(213)]
    (folder / "covid_faq" / "faq.jsonl").write_text("".join(json.dumps(r) + "\n" for r in faq))
    return folder


DATA = ["made", *(["shared"] if DATA_DIR.exists() else [])]  # the real data too, on machines that have it


@pytest.fixture(scope="module", params=DATA)
def source(request, tmp_path_factory):
    if request.param == "made":
        return _made_data(tmp_path_factory.mktemp("data")), Params(seed=3, requests=1500, **SMALL)
    return DATA_DIR, Params(seed=3, requests=1500)


@pytest.fixture(scope="module")
def workload(source):
    return build_workload(source[1], source[0])


def test_the_same_seed_gives_the_same_requests_and_another_seed_others(source, workload):
    data, params = source
    again = build_workload(params, data)
    assert again.requests == workload.requests
    assert again.fingerprint() == workload.fingerprint()
    other = Params(**{**params.__dict__, "seed": 4})
    assert build_workload(other, data).fingerprint() != workload.fingerprint()


def test_it_mixes_every_kind_across_three_tenants(workload):
    kinds = workload.kinds()
    assert set(kinds) == set(KINDS)
    assert kinds["first"] > 100 and kinds["repeat"] > 300
    assert kinds["paraphrase"] >= 10 and kinds["near_miss"] >= 10 and kinds["same_intent"] >= 50
    tenants = Counter(r.tenant for r in workload.requests)
    assert set(tenants) == {"forum", "bank", "health"}
    assert 0.4 < tenants["forum"] / len(workload.requests) < 0.6
    assert {r.kind for r in workload.requests if r.tenant == "health"} == {"first", "repeat"}


def test_popularity_is_skewed_zipf_like(workload):
    topics = Counter(r.topic for r in workload.requests if r.tenant == "forum")
    counts = sorted(topics.values(), reverse=True)
    assert counts[0] >= 20 * counts[len(counts) // 2]  # a long tail behind a few popular questions
    assert sum(1 for c in counts if c == 1) > len(counts) / 3


def test_every_label_follows_from_what_its_tenant_asked_before(workload):
    texts: dict[str, set[str]] = {}
    topics: dict[str, set[str]] = {}
    for r in workload.requests:
        asked, seen = texts.setdefault(r.tenant, set()), topics.setdefault(r.tenant, set())
        key = normalise(r.text)
        assert workload.topic_of[r.tenant][key] == r.topic
        if r.kind == "repeat":
            assert key in asked
        else:
            assert key not in asked
        if r.kind in ("paraphrase", "same_intent"):
            assert r.topic in seen
        if r.kind == "near_miss":
            partners = workload.near_miss_of[key]
            assert partners & asked and r.topic not in seen
        if r.kind == "first":
            assert r.topic not in seen
        asked.add(key)
        seen.add(r.topic)


def test_near_misses_are_label_0_partners_with_other_topics(workload):
    forum = workload.topic_of["forum"]
    for text, partners in workload.near_miss_of.items():
        assert all(forum[p] != forum[text] for p in partners)
        assert all(text in workload.near_miss_of[p] for p in partners)


def test_router_examples_and_warm_up_texts_never_appear_in_the_workload(workload):
    for name, data in workload.tenants.items():
        sent = {normalise(r.text) for r in workload.requests if r.tenant == name}
        assert data.router_examples and data.documents and data.warmup
        assert not sent & {normalise(e["text"]) for e in data.router_examples}
        assert not sent & {normalise(t) for t in data.warmup}


def test_surface_repeats_are_the_same_text_to_the_exact_tier(workload):
    sent: set[str] = set()
    repeats, varied = 0, []
    for r in workload.requests:
        if r.kind == "repeat":
            repeats += 1
            if r.text not in sent:
                varied.append(r)
        sent.add(r.text)
    assert len(varied) > 0.1 * repeats
    for r in varied[:200]:
        assert normalise(r.text) == product_normalise(r.text)
