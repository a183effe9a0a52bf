"""The API's request body parsers: DRF's JSON and our JSON lines, hardened so no body reaches a 500.

Guarantees: every way a body can fail to decode (invalid UTF-8, a syntax error,
``NaN``, an integer Python refuses to read, nesting deep enough to exhaust the
recursion limit) is a ``ParseError``, so the client gets a 400 with the code
``malformed_request`` (``saascore/api/errors.py``). JSON nested deeper than
``MAX_JSON_DEPTH`` is refused the same way: no request of this API needs more
than two levels, and a structure a thousand levels deep would only move the
recursion into whatever reads it next (a serializer, a log line, ``json.dumps``).

Not guaranteed here: the size of a body, which ``ApiErrorMiddleware`` bounds
(413) before any parser reads it, or what the fields mean (the serializers).
"""

import json
from collections.abc import Iterator
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils.json import strict_constant

MAX_JSON_DEPTH = 32


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0, ``[]`` is 1), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterator[Any] = iter(item.values())
        elif isinstance(item, list):
            children = iter(item)
        else:
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _too_deep(where: str) -> ParseError:
    return ParseError(f"{where}JSON nested deeper than {MAX_JSON_DEPTH} levels.")


def loads_bounded(text: str, *, where: str = "") -> Any:
    """``json.loads`` with strict constants and the depth limit; every failure a ParseError.

    ``where`` prefixes the message (``"line 3: "``) so a person can find the fault.
    """
    try:
        value = json.loads(text, parse_constant=strict_constant)
    except RecursionError:
        raise _too_deep(where) from None
    except ValueError as exc:  # syntax, NaN/Infinity, integers over Python's digit limit
        raise ParseError(f"{where}JSON parse error - {exc}") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise _too_deep(where)
    return value


def read_text(stream, parser_context: dict | None) -> str:
    """The body as text in the request's charset (DEFAULT_CHARSET, UTF-8, unless the client named
    another); DRF's ``get_encoding`` refuses non-text codecs such as ``bz2_codec`` (a decompression bomb)."""
    encoding = parsers.get_encoding(parser_context or {})
    try:
        return stream.read().decode(encoding)
    except UnicodeError as exc:  # UnicodeDecodeError, or a codec such as punycode failing its own way
        raise ParseError(f"The body is not valid {encoding}: {exc}") from None


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with every decoding failure and the depth limit turned into a 400."""

    def parse(self, stream, media_type=None, parser_context=None):
        return loads_bounded(read_text(stream, parser_context))


class JsonLinesParser(parsers.BaseParser):
    """``application/x-ndjson``: one JSON value per line (blank lines skipped), as a list."""

    media_type = "application/x-ndjson"

    def parse(self, stream, media_type=None, parser_context=None):
        lines = read_text(stream, parser_context).splitlines()
        return [loads_bounded(line, where=f"line {n}: ") for n, line in enumerate(lines, 1) if line.strip()]
