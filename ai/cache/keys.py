"""Cache scopes, normalisation and the query hash. The keys a scope owns are named
in the one registry of key families, ``saascore/redis/keys.py``."""

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from saascore.redis import keys

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
    """Whose entries may answer a query: tenant, embedder, (optionally) end user, and
    ``context``: a digest of what else the answer depends on (a conversation's earlier
    turns, a named model, a caller's namespace; ai/context.py). Scopes that differ in it
    share no key: a context is never a filter applied to shared entries."""

    tenant_id: int
    embedder_id: str
    user_id: str | None = None
    context: str = ""

    @property
    def tag(self) -> str:
        return keys.tenant_tag(self.tenant_id)

    @property
    def digest(self) -> str:
        raw = f"{self.embedder_id}\x1f{self.user_id or ''}" + (f"\x1f{self.context}" if self.context else "")
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    @property
    def generation_key(self) -> str:
        return keys.generation_key(self.tenant_id)

    def entry_prefix(self) -> str:
        return keys.entry_prefix(self.tenant_id, self.digest)

    def entry_key(self, qhash: str) -> str:
        return keys.entry_key(self.tenant_id, self.digest, qhash)

    def vectorset_key(self, generation: int) -> str:
        return keys.vectorset_key(self.tenant_id, generation, self.digest)

    def index_name(self, dim: int) -> str:
        return keys.index_name(self.tenant_id, dim)

    def lock_key(self, qhash: str) -> str:
        return keys.lock_key(self.tenant_id, self.digest, qhash)

    def entry_id(self, qhash: str) -> str:
        """The entry's id as a client sees it (``x-saascore-cache-key``): meaningful only with
        the tenant of the API key that presents it, which rebuilds the key from it."""
        return f"{self.digest}.{qhash}"


@dataclass(frozen=True)
class EntryId:
    """An entry as a client names it (``CacheScope.entry_id``): its scope's digest and query
    hash. Meaningful only with the tenant of the API key presenting it."""

    scope: str
    qhash: str

    @classmethod
    def parse(cls, text: str) -> "EntryId":
        """Raises ValueError unless ``text`` has the shape the API hands out."""
        match = _ENTRY_ID.fullmatch(text or "")
        if match is None:
            raise ValueError("not a cache key this API handed out")
        return cls(match["scope"], match["qhash"])

    def within(self, tenant_id: int) -> "_NamedScope":
        return _NamedScope(tenant_id, self.scope)


@dataclass(frozen=True)
class _NamedScope:
    """A scope known by its digest only (the vector index's keys need no more)."""

    tenant_id: int
    digest: str

    def vectorset_key(self, generation: int) -> str:
        return keys.vectorset_key(self.tenant_id, generation, self.digest)

    def entry_key(self, qhash: str) -> str:
        return keys.entry_key(self.tenant_id, self.digest, qhash)


_ENTRY_ID = re.compile(r"(?P<scope>[0-9a-f]{16})\.(?P<qhash>[0-9a-f]{32})")

generation_key = keys.generation_key
