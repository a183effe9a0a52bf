import io
import json

import pytest
from django.core.management import call_command
from django.db import ProgrammingError, transaction

from ai.embeddings import get_embedder
from ai.router.io import STARTER_EXAMPLES, parse_lines, router_examples_import
from ai.router.models import RouterExample, RouteRule
from ai.router.service import route_query
from ai.tenant_settings.models import TenantAISettings
from saascore import metrics
from tenants.scoping import tenant_scope
from tests.factories import make_tenant
from tests.openai_server import OpenAIServer

pytestmark = pytest.mark.django_db(transaction=True)  # unscoped work runs on its own connection


def route(tenant, query, **settings_fields):
    embedder = get_embedder()
    settings = TenantAISettings(tenant=tenant, **settings_fields)
    return route_query(
        tenant=tenant,
        query=query,
        vector=embedder.embed([query]).vectors[0],
        embedder_id=embedder.id,
        settings=settings,
    )


@pytest.mark.parametrize(
    ("query", "intent"),
    [
        ("How can I get a refund for my subscription?", "retrieval"),
        ("How do I turn on two-factor authentication?", "retrieval"),
        ("Hello there, how are you?", "chat"),
        ("thank you, that helped a lot", "chat"),
        ("What is 20% of 650?", "analysis"),
        ("Calculate the monthly payment on a 10000 loan over 3 years at 5% interest", "analysis"),
        ("qwerty asdf zxcv uiop", "error"),
        ("Write a poem about the sea and the moon", "error"),
    ],
)
def test_starter_set_decisions(starter_examples, query, intent):
    decision = route(make_tenant(), query)
    assert decision.intent == intent, decision
    assert 0.0 <= decision.confidence <= 1.0 and decision.source == "local"
    assert decision.neighbours and decision.neighbours[0].scope == "global"


def test_decisions_take_the_model_from_the_route_table(starter_examples):
    tenant = make_tenant()
    decision = route(tenant, "Compare the total cost of monthly and annual billing for 30 seats over 2 years")
    assert (decision.intent, decision.complexity) == ("analysis", "high")
    assert (decision.model, decision.fallbacks) == ("gpt-4o", ("claude-3-haiku",))
    with tenant_scope(tenant):
        RouteRule.objects.create(tenant=tenant, intent="analysis", complexity="high", model="claude-3-haiku")
    # No forgetting by hand: a saved rule drops this process's cached tables at once.
    assert route(tenant, "Compare the total cost of monthly and annual billing for 30 seats over 2 years").model == (
        "claude-3-haiku"
    )
    assert route(make_tenant(), "Compare the total cost of monthly and annual billing for 30 seats").model == "gpt-4o"


def test_tenant_examples_never_influence_another_tenant(starter_examples):
    a, b = make_tenant(), make_tenant()
    query = "Is the zorblax quantum ledger reconciled?"
    rows = [
        {"text": "Is the zorblax quantum ledger reconciled?", "intent": "analysis", "complexity": "high"},
        {"text": "zorblax quantum ledger reconciliation state", "intent": "analysis", "complexity": "high"},
    ]
    router_examples_import(rows=rows, tenant=a)
    for_a, for_b = route(a, query), route(b, query)
    assert for_a.intent == "analysis" and for_a.neighbours[0].scope == "tenant"
    assert all(n.scope == "global" for n in for_b.neighbours)
    assert "zorblax" not in " ".join(n.text for n in for_b.neighbours)


def test_personal_data_forces_bypass(starter_examples):
    decision = route(make_tenant(), "My card 4111 1111 1111 1111 was charged twice, what is your refund policy?")
    assert decision.cache_strategy == "bypass"


def test_examples_are_re_embedded_when_their_text_changes(starter_examples):
    tenant = make_tenant()
    router_examples_import(rows=[{"text": "first wording", "intent": "chat", "complexity": "low"}], tenant=tenant)
    with tenant_scope(tenant):
        example = RouterExample.objects.for_tenant(tenant).get()
    before = list(example.embedding)
    example.text = "a completely different question about invoices"
    from ai.router.examples import router_example_save

    router_example_save(example=example)
    assert list(example.embedding) != before and example.embedder_id == get_embedder().id


def test_tenants_read_global_examples_but_cannot_write_them(starter_examples):
    starter_count = len(parse_lines(STARTER_EXAMPLES.read_text().splitlines()))
    tenant = make_tenant()
    with tenant_scope(tenant):
        assert RouterExample.objects.visible_to(tenant).filter(tenant__isnull=True).count() == starter_count
        with pytest.raises(ProgrammingError, match="row-level security"), transaction.atomic():
            RouterExample.objects.create(tenant=None, text="x", intent="chat", complexity="low", text_hash="x")
        assert RouterExample.objects.global_rows().update(note="changed by a tenant") == 0
        assert RouterExample.objects.global_rows()._raw_delete(RouterExample.objects.db) == 0
        assert RouterExample.objects.global_rows().count() == starter_count


def _verdict(**fields) -> str:
    verdict = {"intent": "chat", "complexity": "low", "cache_strategy": "standard", "confidence": 1, **fields}
    return json.dumps(verdict)


class TestLLMRouter:
    @pytest.fixture
    def server(self, settings, monkeypatch):
        with OpenAIServer() as server:
            settings.AI = {
                "PROVIDERS": {"openai": {"base_url": server.base_url, "api_key_env": "TEST_OPENAI_KEY"}},
                "ROUTER_LLM_TIMEOUT": 1.0,
            }
            monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")
            yield server

    def test_structured_output_becomes_the_decision(self, starter_examples, server):
        server.reply(
            content='{"intent": "analysis", "complexity": "high", "cache_strategy": "standard", "confidence": 0.9}',
            usage=(321, 17),
        )
        decision = route(make_tenant(), "How do I reset my password?", router_mode="llm")
        assert (decision.source, decision.intent, decision.complexity, decision.model) == (
            "llm",
            "analysis",
            "high",
            "gpt-4o",
        )
        assert decision.confidence == 0.9 and decision.router_usage == ("gpt-4o-mini", 321, 17)
        request = server.chat_requests()[-1]["body"]
        assert request["model"] == "gpt-4o-mini"
        assert request["response_format"]["type"] == "json_schema"
        assert request["response_format"]["json_schema"]["strict"] is True
        few_shot = [m for m in request["messages"] if m["role"] == "assistant"]
        assert few_shot, "the nearest examples are sent as few-shot turns"

    @pytest.mark.parametrize(
        ("reply", "reason"),
        [
            ({"status": 500}, "http_500"),
            ({"raw": b"{not json"}, "upstream_error"),
            ({"content": "I think it is retrieval"}, "malformed_reply"),
            ({"content": _verdict(intent="shopping")}, "malformed_reply"),
            ({"content": _verdict(confidence=7)}, "malformed_reply"),
            ({"delay": 3.0, "content": "{}"}, "timeout"),
        ],
    )
    def test_any_failure_gives_the_fail_safe_decision(self, starter_examples, server, reply, reason):
        server.reply(**reply)
        failures = metrics.ROUTER_FAILURES.labels(reason=reason)
        before = failures._value.get()
        decision = route(make_tenant(), "How do I reset my password?", router_mode="llm")
        assert (decision.intent, decision.complexity, decision.cache_strategy, decision.confidence) == (
            "retrieval",
            "medium",
            "standard",
            0.5,
        )
        assert decision.model == "gpt-4o-mini" and decision.source == "failsafe"
        assert decision.reason == f"llm_router_{reason}"
        assert failures._value.get() == before + 1

    def test_without_credentials_the_llm_router_is_fail_safe(self, starter_examples, server, monkeypatch):
        monkeypatch.delenv("TEST_OPENAI_KEY")
        decision = route(make_tenant(), "How do I reset my password?", router_mode="llm")
        assert decision.source == "failsafe" and decision.reason == "llm_router_no_provider"
        assert server.chat_requests() == []

    def test_cascade_asks_the_llm_only_under_the_threshold(self, starter_examples, server):
        reply = '{"intent": "chat", "complexity": "low", "cache_strategy": "standard", "confidence": 0.8}'
        server.default.content = reply
        tenant = make_tenant()
        sure = route(tenant, "How do I reset my password?", router_mode="cascade", cascade_threshold=0.0)
        assert sure.source == "local" and server.chat_requests() == []
        unsure = route(tenant, "How do I reset my password?", router_mode="cascade", cascade_threshold=1.0)
        assert unsure.source == "llm" and len(server.chat_requests()) == 1


def test_route_command_prints_the_decision_and_neighbours(starter_examples):
    make_tenant(slug="acme")
    out = io.StringIO()
    call_command("route", "What payment methods do you take?", tenant="acme", stdout=out)
    text = out.getvalue()
    assert "intent retrieval" in text and "nearest examples:" in text and "What payment methods do you accept?" in text


def test_examples_embedded_by_another_embedder_are_embedded_again_when_loaded(starter_examples):
    tenant = make_tenant()
    row = {"text": "quarterly flux capacitor audit", "intent": "analysis", "complexity": "high"}
    router_examples_import(rows=[row], tenant=tenant)
    with tenant_scope(tenant):
        RouterExample.objects.for_tenant(tenant).update(embedder_id="old-embedder", embedding=[0.0] * 384)
    decision = route(tenant, "quarterly flux capacitor audit")
    assert decision.neighbours[0].text == "quarterly flux capacitor audit" and decision.neighbours[0].similarity > 0.99
    with tenant_scope(tenant):
        assert RouterExample.objects.for_tenant(tenant).get().embedder_id == get_embedder().id
