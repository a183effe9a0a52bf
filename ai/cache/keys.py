"""Cache scopes and the Redis keys they own.

Every key starts with the tenant's hash tag ``{t:<tenant_id>}``: all keys of a
tenant share one Redis Cluster slot (no CROSSSLOT) and no key of one tenant can
be named from another tenant's scope. Isolation is by key, not by a filter.

    {t:42}:gen                         the tenant's cache generation (no TTL)
    {t:42}:e:<scope>:<query hash>      an entry (HASH, with TTL)
    {t:42}:v:<generation>:<scope>      vector set of one generation and scope
    {t:42}:idx:<dim>                   RediSearch index over the tenant's entries
    {t:42}:l:<scope>:<query hash>      single-flight lock
"""

import hashlib
import re
import unicodedata
from dataclasses import dataclass

_SPACE = re.compile(r"\s+")
_TRAILING = re.compile(r"[\s?!.。？！]+$")


def normalise(query: str) -> str:
    """The exact tier's notion of "the same text": Unicode-folded, case-folded,
    whitespace collapsed, trailing punctuation dropped."""
    text = unicodedata.normalize("NFKC", query).casefold()
    return _TRAILING.sub("", _SPACE.sub(" ", text).strip())


def query_hash(query: str) -> str:
    return hashlib.sha256(normalise(query).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CacheScope:
    """Whose entries may answer a query: tenant, embedder and (optionally) end user."""

    tenant_id: int
    embedder_id: str
    user_id: str | None = None

    @property
    def tag(self) -> str:
        return f"{{t:{self.tenant_id}}}"

    @property
    def digest(self) -> str:
        raw = f"{self.embedder_id}\x1f{self.user_id or ''}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    @property
    def generation_key(self) -> str:
        return generation_key(self.tenant_id)

    def entry_prefix(self) -> str:
        return f"{self.tag}:e:{self.digest}:"

    def entry_key(self, qhash: str) -> str:
        return f"{self.entry_prefix()}{qhash}"

    def vectorset_key(self, generation: int) -> str:
        return f"{self.tag}:v:{generation}:{self.digest}"

    def index_name(self, dim: int) -> str:
        return f"{self.tag}:idx:{dim}"

    def lock_key(self, qhash: str) -> str:
        return f"{self.tag}:l:{self.digest}:{qhash}"


def generation_key(tenant_id: int) -> str:
    return f"{{t:{tenant_id}}}:gen"
