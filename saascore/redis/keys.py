"""Every Redis key family of the product, in one registry.

Every key starts with its tenant's hash tag ``{t:<tenant_id>}``: all keys of a
tenant share one Redis Cluster slot (no CROSSSLOT), and no key of one tenant can
be named from another tenant's request. Isolation is by key, not by a filter.

    {t:42}:gen                         the tenant's cache generation (no TTL)         ai/cache
    {t:42}:e:<scope>:<query hash>      a cache entry (HASH, with TTL)                   ai/cache
    {t:42}:v:<generation>:<scope>      vector set of one generation and scope           ai/cache
    {t:42}:idx:<dim>                   RediSearch index over the tenant's entries       ai/cache
    {t:42}:l:<scope>:<query hash>      single-flight lock (and ``...:done``)            ai/cache
    {t:42}:idem:<scope>                an Idempotency-Key's claim or stored answer      ai/api
    {t:42}:treq                        the tenant's requests of the last 60 s (ZSET)    billing
    {t:42}:key:<key digest>            a verified API key's record (with TTL)           tenants
    {t:42}:kreq:<key id>               an API key's last minute of requests (ZSET)      billing
    {t:42}:ktok:<key id>:<minute>      an API key's tokens counted in one minute        billing
    {t:42}:par:<key id>                an API key's requests in flight (ZSET, with TTL)  billing

``<scope>`` is a digest (of embedder and end user, or of API key, user and key):
never a value a client sent, so no client string reaches a key name.
"""


def tenant_tag(tenant_id: int) -> str:
    """The hash tag that puts every key of a tenant in one cluster slot."""
    return f"{{t:{int(tenant_id)}}}"


def generation_key(tenant_id: int) -> str:
    return f"{tenant_tag(tenant_id)}:gen"


def entry_key(tenant_id: int, scope: str, query_hash: str) -> str:
    return f"{tenant_tag(tenant_id)}:e:{scope}:{query_hash}"


def entry_prefix(tenant_id: int, scope: str = "") -> str:
    return f"{tenant_tag(tenant_id)}:e:{scope}" + (":" if scope else "")


def vectorset_key(tenant_id: int, generation: int, scope: str) -> str:
    return f"{tenant_tag(tenant_id)}:v:{generation}:{scope}"


def index_name(tenant_id: int, dim: int) -> str:
    return f"{tenant_tag(tenant_id)}:idx:{dim}"


def lock_key(tenant_id: int, scope: str, query_hash: str) -> str:
    return f"{tenant_tag(tenant_id)}:l:{scope}:{query_hash}"


def idempotency_key(tenant_id: int, scope: str) -> str:
    return f"{tenant_tag(tenant_id)}:idem:{scope}"


def tenant_requests(tenant_id: int) -> str:
    return f"{tenant_tag(tenant_id)}:treq"


def key_requests(tenant_id: int, key_id: int) -> str:
    return f"{tenant_tag(tenant_id)}:kreq:{int(key_id)}"


def key_tokens(tenant_id: int, key_id: int, minute: int) -> str:
    return f"{tenant_tag(tenant_id)}:ktok:{int(key_id)}:{minute}"


def parallel_key(tenant_id: int, key_id: int) -> str:
    return f"{tenant_tag(tenant_id)}:par:{int(key_id)}"


def api_key_record(tenant_id: int, digest: str) -> str:
    return f"{tenant_tag(tenant_id)}:key:{digest}"
