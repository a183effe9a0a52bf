"""POST /v1/embeddings: the tenant's embedder (the one its cache and documents use), billed.

``model`` is the embedder's id as GET /v1/models lists it, or "auto". ``input`` is a
string or a list of strings (token arrays are refused). ``encoding_format`` "base64"
(what the openai SDK asks for by default) sends little-endian float32, as OpenAI does.
Each request counts against the rate limit and writes one ledger row (source
``embedding``: the embedder's tokens at its price); like a cache hit, it reserves no
spend (docs/decisions.md).
"""

import base64

import numpy as np
from django.http import HttpRequest, HttpResponse

from ai.api.caller import caller_of
from ai.api.chat import OpenAICompatibleApi
from ai.api.openai_input import AUTO, ModelNotFound, end_user, invalid, storable
from ai.cache import get_cache
from ai.context import CacheControl
from ai.embeddings import get_embedder
from billing.group_commit import ledger
from billing.key_admission import aadmit
from billing.models import UsageRecord
from billing.services import Usage
from saascore import door, metrics
from saascore.api.lean import async_endpoint, json_body, json_response
from saascore.pools import in_cpu
from tenants.authentication import aauthenticate

MAX_INPUTS = 256
MAX_INPUT_CHARS = 8000


def _inputs(value) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not 1 <= len(texts) <= MAX_INPUTS:
        raise invalid("input", f"a string or a list of 1 to {MAX_INPUTS} strings")
    if not all(isinstance(t, str) and 0 < len(t) <= MAX_INPUT_CHARS for t in texts):
        raise invalid("input", f"strings of 1 to {MAX_INPUT_CHARS} characters (token arrays are not supported)")
    return [storable(text, "input") for text in texts]


def _encoded(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return [float(x) for x in vector]


async def embeddings(request: HttpRequest) -> HttpResponse:
    tenant = (await aauthenticate(request)).tenant
    body = json_body(request)
    body = body if isinstance(body, dict) else {}
    embedder = get_embedder()
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", f'the embedder "{embedder.id}" (GET /v1/models) or "{AUTO}"')
    if model not in (AUTO, embedder.id):
        raise ModelNotFound(f"The embeddings model `{model}` is not this tenant's; it embeds with `{embedder.id}`.")
    texts = _inputs(body.get("input"))
    end_user(body.get("user"))  # checked before anything is spent
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise invalid("encoding_format", '"float" or "base64"')
    if body.get("dimensions") not in (None, embedder.dim):
        raise invalid("dimensions", f"this embedder's vectors have {embedder.dim} dimensions")
    # The key's own limits as on a chat completion: its models (the embedder counts as one), its
    # requests per minute and parallel requests, and it and its tags on the ledger row.
    caller = caller_of(request, control=CacheControl(), metadata=body.get("metadata"), model=embedder.id)
    admission = await aadmit(tenant=tenant, api_key=caller.api_key, request_id=request.request_id,
                             guard=get_cache().guard)  # fmt: skip
    door.leave()  # admitted: the embedding is not the door's business (saascore/door.py)
    try:
        embedded = await in_cpu(embedder.embed, texts, tenant_id=tenant.pk)
        usage = Usage(
            request_id=request.request_id,
            source=UsageRecord.Source.EMBEDDING,
            embedding_model=embedder.id,
            embedding_tokens=embedded.input_tokens,
            end_user=end_user(body.get("user")) or "",
            api_key_id=caller.api_key_id,
            tags=caller.tags,
        )
        row = await ledger.arecord(tenant_id=tenant.pk, usage=usage)
    finally:
        await admission.arelease()
    metrics.usage_count(tenant=tenant, row=row)
    data = [
        {"object": "embedding", "index": n, "embedding": _encoded(vector, encoding)}
        for n, vector in enumerate(embedded.vectors)
    ]
    tokens = {"prompt_tokens": embedded.input_tokens, "total_tokens": embedded.input_tokens}
    return json_response(
        {"object": "list", "data": data, "model": embedder.id, "usage": tokens},
        headers={"x-saascore-request-id": request.request_id, **admission.headers()},
    )


embeddings_endpoint = async_endpoint(OpenAICompatibleApi, embeddings)
