"""The end-to-end benchmark's workload: several tenants, Zipf popularity, exact
repeats, paraphrases and near-misses, built from ../shared/data and seeded.

Three tenants, each with its own questions:

- ``forum``: Quora question pairs (``qqp_dev.jsonl``). A label-1 pair is one
  topic asked in two phrasings (a paraphrase); the two questions of a label-0
  pair are two topics whose wording is close (near-misses), given neighbouring
  popularity ranks so that both get asked.
- ``bank``: Banking77 customer queries (``banking77/train.csv``). A topic is one
  of the 77 intents, asked in many phrasings: another phrasing of an intent
  already asked is a "same intent" request. (Banking77 is present, so CLINC150's
  banking domain is not needed.)
- ``health``: the COVID FAQ (``covid_faq/faq.jsonl``): one phrasing per topic,
  so its requests are first asks or exact repeats.

Topics are drawn by Zipf popularity (probability ~ 1 / rank^s); Banking77
phrasings within an intent are Zipf too. A repeat of a text is sometimes sent
with another casing, spacing or trailing punctuation ("surface" repeats: the
exact tier's normalisation treats them as the same text). Every request is
labelled with its kind, from what its tenant has asked before it:

    first        nothing of its topic asked before: expected miss
    repeat       the same text (up to normalisation) asked before: exact hit
    paraphrase   the other phrasing of a label-1 pair asked before: semantic hit
    same_intent  another Banking77 phrasing of the intent asked before
    near_miss    only a label-0 partner asked before: a hit would be false

Every tenant also gets router examples of its own domain drawn from texts that
the workload never sends, and its documents (the demo FAQs, the COVID answers).
Only the standard library here: tests import it without Django or services.
"""

import csv
import hashlib
import json
import random
import re
import unicodedata
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data"
DEMO_DIR = ROOT / "ai" / "rag" / "demo"
KINDS = ("first", "repeat", "paraphrase", "same_intent", "near_miss")

_SPACE = re.compile(r"\s+")
_TRAILING = re.compile(r"[\s?!.。？！]+$")


def normalise(text: str) -> str:
    """The exact tier's notion of the same text (mirrors ai.cache.keys.normalise)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _TRAILING.sub("", _SPACE.sub(" ", folded).strip())


@dataclass(frozen=True)
class Params:
    seed: int = 8
    requests: int = 3000
    shares: tuple[tuple[str, float], ...] = (("forum", 0.5), ("bank", 0.3), ("health", 0.2))
    zipf_s: float = 1.0
    forum_paraphrase_pairs: int = 1500
    forum_near_miss_pairs: int = 750
    forum_max_phrasings: int = 6
    bank_phrasings_per_intent: int = 30
    bank_phrasing_zipf_s: float = 1.0
    health_router_examples: int = 50
    surface_repeat_share: float = 0.25


@dataclass(frozen=True)
class Request:
    index: int
    tenant: str
    text: str
    kind: str
    topic: str


@dataclass
class TenantData:
    documents: list[dict]
    router_examples: list[dict]
    warmup: list[str]


@dataclass
class Workload:
    params: Params
    requests: list[Request]
    tenants: dict[str, TenantData]
    topic_of: dict[str, dict[str, str]] = field(default_factory=dict)  # tenant -> normalised text -> topic
    near_miss_of: dict[str, set[str]] = field(default_factory=dict)  # forum: normalised text -> label-0 partners
    topics: dict[str, list[tuple[str, list[str]]]] = field(default_factory=dict)  # tenant -> (topic, phrasings)

    def kinds(self, tenant: str | None = None) -> Counter:
        return Counter(r.kind for r in self.requests if tenant is None or r.tenant == tenant)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for r in self.requests:
            digest.update(f"{r.tenant}\x1f{r.kind}\x1f{r.text}\x1e".encode())
        return digest.hexdigest()[:16]

    def summary(self) -> dict:
        return {
            "requests": len(self.requests),
            "fingerprint": self.fingerprint(),
            "params": {k: (dict(v) if k == "shares" else v) for k, v in self.params.__dict__.items()},
            "kinds": dict(self.kinds()),
            "by_tenant": {t: dict(self.kinds(t)) for t in self.tenants},
            "distinct_texts": len({(r.tenant, normalise(r.text)) for r in self.requests}),
        }


@dataclass
class _Topic:
    key: str
    phrasings: list[str]
    weights: list[float] | None = None  # None: phrasings equally likely
    partner: str | None = None  # label-0 partner topic


def _zipf_cumulative(n: int, s: float) -> list[float]:
    return list(accumulate(1.0 / (rank**s) for rank in range(1, n + 1)))


def _pick(cumulative: list[float], rng: random.Random) -> int:
    return min(bisect_right(cumulative, rng.random() * cumulative[-1]), len(cumulative) - 1)


def _surface(text: str, rng: random.Random) -> str:
    """The same text to the exact tier: other casing, spacing or trailing punctuation."""
    variant = rng.randrange(4)
    if variant == 0:
        return text.lower()
    if variant == 1:
        return text.rstrip("?!. ") if text.rstrip().endswith(("?", "!", ".")) else text + "?"
    if variant == 2:
        return "  " + text.replace(" ", "  ", 1)
    return text[:1].upper() + text[1:] + " ?"


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _clusters(pairs: list[dict]) -> dict[str, list[str]]:
    """Label-1 pairs joined into clusters of phrasings (union-find over normalised texts)."""
    parent: dict[str, str] = {}
    spelling: dict[str, str] = {}

    def root(key: str) -> str:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for pair in pairs:
        keys = []
        for side in ("text_a", "text_b"):
            text = pair[side].strip()
            key = normalise(text)
            spelling.setdefault(key, text)
            keys.append(root(key))
        if int(pair["label"]) == 1:
            parent[keys[0]] = keys[1]
    clusters: dict[str, list[str]] = {}
    for key in sorted(spelling):
        clusters.setdefault(root(key), []).append(spelling[key])
    return clusters


def _forum(data: Path, params: Params, rng: random.Random) -> tuple[list[list[_Topic]], TenantData]:
    """Topics are clusters of label-1 pairs (2+ phrasings); label-0 pairs link two topics as near-misses."""
    pairs = _read_jsonl(data / "qqp_dev.jsonl")
    clusters = _clusters(pairs)
    cluster_of = {normalise(text): root for root, texts in clusters.items() for text in texts}
    rng.shuffle(pairs)
    used: set[str] = set()
    units: list[list[_Topic]] = []
    spare: list[str] = []
    want = {1: params.forum_paraphrase_pairs, 0: params.forum_near_miss_pairs}
    for pair in pairs:
        label = int(pair["label"])
        a, b = (cluster_of[normalise(pair[side])] for side in ("text_a", "text_b"))
        if a == b and label == 0:
            continue  # labels that contradict the clusters
        if a in used or b in used or max(len(clusters[a]), len(clusters[b])) > params.forum_max_phrasings:
            continue
        if want[label] == 0:
            if len(spare) < 200 and a not in used:
                used.add(a)
                spare.append(clusters[a][0])
            continue
        want[label] -= 1
        used |= {a, b}
        if label == 1:
            units.append([_Topic(f"qqp:{a}", clusters[a])])
        else:
            units.append(
                [
                    _Topic(f"qqp:{a}", clusters[a], partner=f"qqp:{b}"),
                    _Topic(f"qqp:{b}", clusters[b], partner=f"qqp:{a}"),
                ]
            )
    examples = [
        {"text": t, "intent": "retrieval", "complexity": "medium", "cache_strategy": "standard"} for t in spare[:120]
    ]
    docs = _read_jsonl(DEMO_DIR / "acme_help_centre.jsonl")
    return units, TenantData(docs, examples, spare[120:160])


def _bank(data: Path, params: Params, rng: random.Random) -> tuple[list[list[_Topic]], TenantData]:
    by_intent: dict[str, list[str]] = {}
    with (data / "banking77" / "train.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_intent.setdefault(row["category"], []).append(row["text"].strip())
    units, examples, warmup = [], [], []
    phrasing_weights = _zipf_cumulative(params.bank_phrasings_per_intent, params.bank_phrasing_zipf_s)
    for intent in sorted(by_intent):
        texts = list(dict.fromkeys(by_intent[intent]))
        rng.shuffle(texts)
        chosen = texts[: params.bank_phrasings_per_intent]
        examples += [
            {"text": t, "intent": "retrieval", "complexity": "medium", "cache_strategy": "standard"}
            for t in texts[params.bank_phrasings_per_intent : params.bank_phrasings_per_intent + 2]
        ]
        warmup += texts[params.bank_phrasings_per_intent + 2 : params.bank_phrasings_per_intent + 3]
        weights = phrasing_weights[: len(chosen)]
        units.append([_Topic(f"b77:{intent}", chosen, weights=weights)])
    docs = _read_jsonl(DEMO_DIR / "northwind_bank_faq.jsonl")
    return units, TenantData(docs, examples, warmup[:40])


def _health(data: Path, params: Params, rng: random.Random) -> tuple[list[list[_Topic]], TenantData]:
    rows = _read_jsonl(data / "covid_faq" / "faq.jsonl")
    questions = list({normalise(r["question"]): r["question"].strip() for r in rows}.values())
    rng.shuffle(questions)
    held_out = questions[: params.health_router_examples]
    examples = [
        {"text": t, "intent": "retrieval", "complexity": "medium", "cache_strategy": "standard"} for t in held_out
    ]
    units = [[_Topic(f"faq:{n}", [q])] for n, q in enumerate(questions[params.health_router_examples :])]
    docs = [
        {"title": r["question"].strip()[:300], "content": r["answer"], "source": r.get("link", "").strip()[:1000]}
        for r in rows
    ]
    return units, TenantData(docs, examples, held_out[:20])


BUILDERS = {"forum": _forum, "bank": _bank, "health": _health}


def build_workload(params: Params | None = None, data_dir: Path | None = None) -> Workload:
    """The request sequence for ``params`` (same params and data: the same sequence)."""
    params = params or Params()
    data = Path(data_dir or DATA_DIR)
    rng = random.Random(params.seed)
    tenants: dict[str, TenantData] = {}
    ranked: dict[str, list[_Topic]] = {}
    for name, _share in params.shares:
        units, tenant_data = BUILDERS[name](data, params, random.Random(f"{params.seed}:{name}"))
        rng.shuffle(units)  # popularity rank: label-0 partners stay neighbours
        ranked[name] = [topic for unit in units for topic in unit]
        tenants[name] = tenant_data
    workload = Workload(params, [], tenants)
    for name, topics in ranked.items():
        workload.topic_of[name] = {normalise(p): t.key for t in topics for p in t.phrasings}
        workload.topics[name] = [(t.key, t.phrasings) for t in topics]
    by_key = {t.key: t for topics in ranked.values() for t in topics}
    for topic in ranked.get("forum", []):
        if topic.partner:
            partners = {normalise(p) for p in by_key[topic.partner].phrasings}
            workload.near_miss_of.update({normalise(p): partners for p in topic.phrasings})
    cumulative = {name: _zipf_cumulative(len(topics), params.zipf_s) for name, topics in ranked.items()}
    tenant_cumulative = list(accumulate(share for _, share in params.shares))
    names = [name for name, _ in params.shares]
    asked_texts: dict[str, set[str]] = {name: set() for name in names}
    asked_topics: dict[str, set[str]] = {name: set() for name in names}
    for index in range(params.requests):
        tenant = names[_pick(tenant_cumulative, rng)]
        topic = ranked[tenant][_pick(cumulative[tenant], rng)]
        if topic.weights:
            text = topic.phrasings[_pick(topic.weights, rng)]
        else:
            text = topic.phrasings[rng.randrange(len(topic.phrasings))]
        key = normalise(text)
        if key in asked_texts[tenant]:
            kind = "repeat"
            if rng.random() < params.surface_repeat_share:
                text = _surface(text, rng)
        elif topic.key in asked_topics[tenant]:
            kind = "paraphrase" if tenant == "forum" else "same_intent"
        elif topic.partner and topic.partner in asked_topics[tenant]:
            kind = "near_miss"
        else:
            kind = "first"
        asked_texts[tenant].add(key)
        asked_topics[tenant].add(topic.key)
        workload.requests.append(Request(index, tenant, text, kind, topic.key))
    return workload


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Print the workload's mix (no services needed).")
    parser.add_argument("--requests", type=int, default=Params.requests)
    parser.add_argument("--seed", type=int, default=Params.seed)
    parser.add_argument("--zipf-s", type=float, default=Params.zipf_s)
    args = parser.parse_args()
    workload = build_workload(Params(seed=args.seed, requests=args.requests, zipf_s=args.zipf_s))
    print(json.dumps(workload.summary(), indent=2))


if __name__ == "__main__":
    main()
