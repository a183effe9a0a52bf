"""Where an API key's plaintext could end up: log lines, database rows, Redis values.

A key is ``sc_<tenant>_<secret>``; its display prefix (the secret's first characters) is
shown and stored by design. What must never appear is the rest: we look for the
characters that follow the prefix, which any leak of the whole key or secret contains.
"""

from pathlib import Path

import redis
from django.db import connections

from tenants.models import PREFIX_LENGTH
from tenants.scoping import UNSCOPED_ALIAS, unscoped_scope

MARK_LENGTH = 12  # 72 random bits: no chance match in a test's worth of text


def mark_of(key: str) -> str:
    secret = key.split("_", 2)[2]
    return secret[PREFIX_LENGTH : PREFIX_LENGTH + MARK_LENGTH]


def in_lines(keys: list[str], lines: list[str]) -> list[str]:
    marks = [mark_of(key) for key in keys]
    return [line for line in lines if any(mark in line for mark in marks)]


def in_files(keys: list[str], folder: Path) -> list[str]:
    marks = [mark_of(key).encode() for key in keys]
    return [str(path) for path in folder.rglob("*") if path.is_file() and any(m in path.read_bytes() for m in marks)]


def tables_holding(texts: list[str]) -> list[str]:
    """Tables with a row whose text holds one of ``texts`` (every table, every tenant: the unscoped role)."""
    found = []
    with unscoped_scope(), connections[UNSCOPED_ALIAS].cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        for (table,) in cursor.fetchall():
            cursor.execute(
                f'SELECT count(*) FROM "{table}" AS r '
                "WHERE EXISTS (SELECT 1 FROM unnest(%s::text[]) AS m WHERE strpos(r::text, m) > 0)",
                [texts],
            )
            if cursor.fetchone()[0]:
                found.append(table)
    return found


def in_database(keys: list[str]) -> list[str]:
    return tables_holding([mark_of(key) for key in keys])


def _values(client: redis.Redis, key: bytes) -> list[bytes]:
    kind = client.type(key).decode()
    if kind == "string":
        return [client.get(key) or b""]
    if kind == "hash":
        return [item for pair in client.hgetall(key).items() for item in pair]
    if kind == "list":
        return client.lrange(key, 0, -1)
    if kind == "set":
        return list(client.smembers(key))
    if kind == "zset":
        return client.zrange(key, 0, -1)
    if kind == "stream":
        return [repr(entry).encode() for entry in client.xrange(key)]
    if kind == "vectorset":
        members = client.execute_command("VRANDMEMBER", key, client.execute_command("VCARD", key)) or []
        attributes = [client.execute_command("VGETATTR", key, member) or b"" for member in members]
        return [*members, *attributes]
    return [client.dump(key) or b""]  # a module type: its serialised form


def redis_keys_holding(texts: list[str], url: str) -> list[str]:
    """Redis keys whose name or value holds one of ``texts``."""
    marks = [text.encode() for text in texts]
    client = redis.Redis.from_url(url, socket_timeout=10)
    found = []
    for name in client.scan_iter(count=1000):
        values = [name, *_values(client, name)]
        if any(mark in value for value in values for mark in marks):
            found.append(name.decode(errors="replace"))
    return found


def in_redis(keys: list[str], url: str) -> list[str]:
    return redis_keys_holding([mark_of(key) for key in keys], url)


def assert_nowhere(keys: list[str], *, lines: list[str], redis_urls: list[str], folders: list[Path] = ()) -> None:
    """No key's plaintext in these log lines, the database, these Redis servers or files."""
    assert keys, "no API keys to look for"
    assert lines, "no log lines were captured"
    assert not (leaked := in_lines(keys, lines)), f"API key plaintext in log lines: {leaked[:3]}"
    assert not (tables := in_database(keys)), f"API key plaintext in tables: {tables}"
    for url in redis_urls:
        assert not (names := in_redis(keys, url)), f"API key plaintext in Redis ({url}): {names[:5]}"
    for folder in folders:
        assert not (files := in_files(keys, folder)), f"API key plaintext in files: {files}"
