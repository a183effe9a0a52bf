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


generation_key = keys.generation_key
