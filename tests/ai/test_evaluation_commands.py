"""The evaluation commands run end to end on small files of the same format."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from tests.ai.verifier.pairs import labelled_pairs

PAIRS = [
    ("How do I reset my password?", "How can I reset my password?", 1),
    ("What is the refund policy?", "What is your policy on refunds?", 1),
    ("How do I learn Python?", "How do I learn Java?", 0),
    ("Is 5 a prime number?", "Is 7 a prime number?", 0),
    ("Can I cancel my plan?", "Can I not cancel my plan?", 0),
    ("Where is the invoice page?", "Where do I find my invoices?", 1),
]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_eval_cache_scores_every_step(tmp_path):
    data = _write_jsonl(tmp_path / "pairs.jsonl", [{"text_a": a, "text_b": b, "label": y} for a, b, y in PAIRS])
    out = io.StringIO()
    call_command("eval_cache", data=data, thresholds="0.5,0.99", json=True, stdout=out, stderr=io.StringIO())
    result = json.loads(out.getvalue())
    assert result["pairs"] == 6 and result["positives"] == 3
    assert set(result["steps"]) == {"cosine", "guards", "intent"}
    loose, strict = result["steps"]["cosine"]
    assert loose["threshold"] == 0.5 and loose["hits"] >= strict["hits"]
    assert loose["recall"] == 1.0  # every paraphrase is above 0.5
    guarded = result["steps"]["guards"][0]
    assert guarded["hits"] < loose["hits"]  # "5 vs 7" and "cancel vs not cancel" are vetoed
    assert guarded["precision"] >= loose["precision"]


def test_eval_cache_trains_the_verifier_on_train_pairs_only(tmp_path):
    rows = labelled_pairs()[:150]
    scored = [{"text_a": a, "text_b": b, "label": y} for a, b, y in PAIRS]
    data = _write_jsonl(tmp_path / "pairs.jsonl", scored)
    train = _write_jsonl(tmp_path / "train.jsonl", rows + scored)  # the scored pairs are left out of training
    out = io.StringIO()
    call_command("eval_cache", data=data, train=train, thresholds="0.5", json=True, stdout=out, stderr=io.StringIO())
    result = json.loads(out.getvalue())
    assert set(result["steps"]) == {"cosine", "guards", "intent", "verifier"}
    assert result["verifier"]["pairs"] == 150
    assert result["steps"]["verifier"][0]["hits"] <= result["steps"]["guards"][0]["hits"]


def test_eval_cache_verifier_step_needs_train_pairs(tmp_path):
    data = _write_jsonl(tmp_path / "pairs.jsonl", [{"text_a": "a", "text_b": "b", "label": 1}])
    with pytest.raises(CommandError, match="--train"):
        call_command("eval_cache", data=data, steps="verifier")


def test_eval_cache_refuses_unknown_steps(tmp_path):
    data = _write_jsonl(tmp_path / "pairs.jsonl", [{"text_a": "a", "text_b": "b", "label": 1}])
    with pytest.raises(CommandError, match="Unknown steps"):
        call_command("eval_cache", data=data, steps="cosine,magic")


def test_eval_router_reports_accuracy_calibration_and_latency(tmp_path):
    domains = {"banking": ["balance", "transfer"], "small_talk": ["greeting"], "utility": ["calculator"]}
    (tmp_path / "domains.json").write_text(json.dumps(domains))
    train = [
        ("what is my balance", "balance"), ("how much money do i have", "balance"), ("show account balance", "balance"),
        ("send money to john", "transfer"), ("transfer 50 dollars", "transfer"), ("move money to savings", "transfer"),
        ("hello there", "greeting"), ("hi how are you", "greeting"), ("good morning", "greeting"),
        ("what is 5 times 7", "calculator"), ("add 12 and 30", "calculator"), ("divide 100 by 4", "calculator"),
        ("who won the game last night", "oos"), ("write me a song", "oos"),
    ]  # fmt: skip
    scored = [("what's my account balance", "balance"), ("hey hello", "greeting"), ("multiply 6 by 9", "calculator")]
    _write_jsonl(tmp_path / "train.jsonl", [{"text": t, "intent": i} for t, i in train])
    _write_jsonl(tmp_path / "val.jsonl", [{"text": t, "intent": i} for t, i in scored])
    _write_jsonl(tmp_path / "oos_val.jsonl", [{"text": "what is the plot of hamlet", "intent": "oos"}])
    out = io.StringIO()
    call_command(
        "eval_router", train=tmp_path / "train.jsonl", data=tmp_path / "val.jsonl", per_intent=3, json=True,
        stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    result = json.loads(out.getvalue())
    assert result["queries"] == 4 and result["examples"] == 14
    assert result["per_intent"]["retrieval"]["support"] == 1 and result["per_intent"]["error"]["support"] == 1
    assert 0 <= result["accuracy"] <= 1 and 0 <= result["expected_calibration_error"] <= 1
    assert set(result["latency_ms"]) == {"p50", "p95", "p99"}

    out = io.StringIO()
    call_command(
        "eval_router", train=tmp_path / "train.jsonl", data=tmp_path / "val.jsonl", per_intent=3, cv=2,
        stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    assert "2-fold cross-validation on the training rows (14 queries)" in out.getvalue()
    assert "at 18% out of scope" in out.getvalue()  # the training rows hold both kinds


@pytest.mark.django_db(transaction=True)
def test_load_jsonl_loads_and_ingests_a_tenants_documents(tmp_path):
    from ai.rag.models import Document
    from tenants.scoping import tenant_scope
    from tests.factories import make_tenant

    tenant = make_tenant()
    rows = [
        {"q": f"Question {n}?", "a": f"The answer to question {n} is {n * 7}.", "url": f"https://x/{n}"}
        for n in range(3)
    ]
    corpus = _write_jsonl(tmp_path / "faq.jsonl", rows)
    out = io.StringIO()
    call_command("load_jsonl", corpus, tenant=tenant.slug, text_field="a", title_field="q", source_field="url",
                 stdout=out, stderr=io.StringIO())  # fmt: skip
    assert "3 created, 0 updated, 3 documents ready" in out.getvalue()
    with tenant_scope(tenant):
        assert set(Document.objects.for_tenant(tenant).values_list("status", flat=True)) == {"ready"}


E2E_FAQ = [
    # As FAQ exports have them: a no-break space and a trailing newline, compared as plain text.
    {"question": "How long are cats\xa0pregnant?\n", "answer": "A cat's pregnancy lasts about 63 to 65 days."},
    {"question": "Can I give my cat milk?", "answer": "Most adult cats are lactose intolerant; give them water."},
    {"question": "How often should a kitten be fed?", "answer": "Kittens eat three to four small meals a day."},
]


@pytest.mark.django_db(transaction=True)  # the pipeline's pools use their own connections
def test_eval_e2e_loads_a_fresh_tenant_and_scores_rephrasings_hits_and_refusals(tmp_path):
    from ai.rag.models import Document
    from tenants.models import Tenant
    from tenants.scoping import tenant_scope

    faq = _write_jsonl(tmp_path / "faq.jsonl", E2E_FAQ)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "\ufeffquestion_1,question_2,similar\n"  # with the byte-order mark a spreadsheet writes
        "How long are cats pregnant?,How long are cats pregnant for?,1\n"
        "Can I give my cat milk?,can i give my cat milk,1\n"
        "How often should a kitten be fed?,How long are cats pregnant for?,0\n"
        "How often should a kitten be fed?,which stocks should I buy this week,0\n"
    )
    oos = _write_jsonl(tmp_path / "oos.jsonl", [{"text": "who won the football world cup"}, {"text": "tell me a poem"}])
    out = io.StringIO()
    call_command("eval_e2e", faq=faq, pairs=pairs, oos=oos, tenant="e2e-cats", json=True,
                 stdout=out, stderr=io.StringIO())  # fmt: skip
    result = json.loads(out.getvalue())
    tenant = Tenant.objects.get(slug="e2e-cats")
    with tenant_scope(tenant):
        assert Document.objects.for_tenant(tenant).count() == 3
    assert (result["pairs"], result["faq_questions_asked"], result["second_questions_asked"]) == (4, 3, 3)
    assert result["in_scope_rate"] == 1.0
    # Both rephrasings are near-copies of their FAQ question: answered from the cache, from their entry.
    assert result["hits"] == 2 and result["hit_precision"] == 1.0 and result["hit_recall"] == 1.0
    assert result["right_document_rate"] == 1.0
    assert result["oos_refused_rate"] == 1.0 and result["router_calibration_error"] is not None
    with pytest.raises(CommandError, match="exists"):
        call_command("eval_e2e", faq=faq, pairs=pairs, tenant="e2e-cats", stdout=io.StringIO())


def _feedback_pairs(tenant, rows):
    from ai.verifier.models import LabelledPair
    from tenants.scoping import tenant_scope

    with tenant_scope(tenant):
        LabelledPair.objects.bulk_create(
            LabelledPair(
                tenant=tenant, text_a=r["text_a"], text_b=r["text_b"], same=bool(r["label"]), source="feedback"
            )
            for r in rows
        )


def test_eval_cache_chooses_and_saves_a_tenants_thresholds_from_its_own_pairs(transactional_db):
    from ai.tenant_settings.models import TenantSettingsChange
    from ai.tenant_settings.selectors import settings_for
    from tenants.scoping import tenant_scope
    from tests.factories import make_tenant

    alpha, bravo = make_tenant(), make_tenant()
    _feedback_pairs(alpha, labelled_pairs()[:80])
    _feedback_pairs(bravo, [{"text_a": "Where is my bill?", "text_b": "Where is my bill?", "label": 0}] * 30)

    out = io.StringIO()
    call_command("eval_cache", tenant=alpha.slug, target_precision=0.8, json=True, stdout=out, stderr=io.StringIO())
    dry = json.loads(out.getvalue())
    assert dry["pairs"] == 80 and dry["applied"] == []  # bravo's pairs never count for alpha
    assert dry["standard"] is not None and dry["chosen_on_all"]["precision"] >= 0.8
    assert dry["standard"] <= dry["strict"] and set(dry["cross_validated"]) == {"folds", "hits", "precision", "recall"}
    assert settings_for(alpha).threshold_standard == 0.90  # not saved without --apply

    out = io.StringIO()
    call_command("eval_cache", tenant=alpha.slug, target_precision=0.8, apply=True, stdout=out, stderr=io.StringIO())
    assert "saved: threshold_standard" in out.getvalue()
    with tenant_scope(alpha):
        changed = set(TenantSettingsChange.objects.values_list("field", "new_value"))
    assert ("threshold_standard", str(dry["standard"])) in changed  # through the audited settings service
    with tenant_scope(bravo):
        assert not TenantSettingsChange.objects.exists()

    with pytest.raises(CommandError, match="at least 20 labelled pairs"):
        call_command("eval_cache", tenant=make_tenant().slug, stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="needs --tenant"):
        call_command("eval_cache", data=__file__, apply=True, stdout=io.StringIO(), stderr=io.StringIO())
