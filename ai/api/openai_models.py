"""GET /v1/models: what this tenant may name as ``model`` (OpenAI's list shape).

"auto" (the router chooses), then every model of the tenant's routes with that route's
fallbacks (``saascore_fallbacks``), then the tenant's embedder (for /v1/embeddings).
Read from the row caches: no SQL in steady state.
"""

from django.http import HttpRequest, HttpResponse

from ai.api.chat import OpenAICompatibleApi
from ai.api.openai_input import AUTO
from ai.embeddings import get_embedder
from ai.router.table import aroute_table, model_route, table_models
from catalog.selectors import aprice_at
from saascore.api.lean import async_endpoint, json_response
from tenants.authentication import aauthenticate


def _model(name: str, created: int, owner: str, **extra) -> dict:
    return {"id": name, "object": "model", "created": created, "owned_by": owner, **extra}


async def models(request: HttpRequest) -> HttpResponse:
    tenant = (await aauthenticate(request)).tenant
    table = await aroute_table(tenant)
    data = [_model(AUTO, 0, "saascore", saascore_kind="router")]
    for name in table_models(table):
        price = await aprice_at(model=name)
        created = int(price.effective_from.timestamp()) if price else 0
        fallbacks = list(model_route(table, name)[1])
        data.append(_model(name, created, price.provider if price else "saascore", saascore_fallbacks=fallbacks))
    data.append(_model(get_embedder().id, 0, "saascore", saascore_kind="embeddings"))
    return json_response({"object": "list", "data": data})


models_endpoint = async_endpoint(OpenAICompatibleApi, models, methods=("GET",))
