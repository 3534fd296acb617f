"""XML-RPC bodies: responses with 64-bit integers (the one ``<i8>`` marshaller of the project) and a fast
request parser.

XML-RPC's ``<int>`` is 32-bit and Python's stdlib marshaller refuses larger integers ("int exceeds XML-RPC
limits"), although it reads ``<i8>`` (reference/ecosystem-notes.md §0.4). Balances above 21.47 BAY are common,
so every response goes through :func:`dump_response`, which writes ``<i8>`` outside the int32 range.
"""

from __future__ import annotations

import re
import xmlrpc.client
from typing import Any, Callable
from xml.parsers import expat

_INT32 = range(-(2**31), 2**31)
_INT64 = range(-(2**63), 2**63)


class I8Marshaller(xmlrpc.client.Marshaller):
    """The stdlib marshaller, except that integers outside int32 are written as ``<i8>`` instead of failing
    (beyond int64, which no ``<i8>`` holds, it fails as the stdlib does)."""

    dispatch = dict(xmlrpc.client.Marshaller.dispatch)

    def dump_long(self, value: int, write: Callable[[str], Any]) -> None:
        if value not in _INT64:
            raise OverflowError("int exceeds XML-RPC limits")
        tag = "int" if value in _INT32 else "i8"
        write(f"<value><{tag}>{int(value)}</{tag}></value>\n")

    dispatch[int] = dump_long


def _dump_response(value: tuple | xmlrpc.client.Fault) -> bytes:
    body = I8Marshaller("utf-8", allow_none=False).dumps(value)
    text = "<?xml version='1.0'?>\n<methodResponse>\n" + body + "</methodResponse>\n"
    return text.encode("utf-8", "xmlcharrefreplace")


# The answer of every successful change (Trade, Deposit, SetPassword, ...): made once, byte for byte what the
# marshaller writes, since building it cost ~8 µs of each such call.
TRUE_RESPONSE = _dump_response((True,))


def dump_response(value: tuple | xmlrpc.client.Fault) -> bytes:
    """A methodResponse body (a one-value tuple or a Fault), with ``<i8>`` for large integers."""
    if type(value) is tuple and len(value) == 1 and value[0] is True:
        return TRUE_RESPONSE
    return _dump_response(value)


# -- requests ---------------------------------------------------------------------------------------------

_DECLARATION = re.compile(r"<\?xml version=(['\"])1\.0\1(?: encoding=(['\"])(?:utf-8|UTF-8)\2)?[ \t\n]*\?>")
_CALL_HEAD = re.compile(r"[ \t\n]*<methodCall>[ \t\n]*<methodName>([A-Za-z0-9_.:]+)</methodName>[ \t\n]*<params>")
_PARAM = re.compile(
    r"[ \t\n]*<param>[ \t\n]*<value>(?:<(string|int|i4|i8|boolean)>([^<]*)</\1>|(<string/>)|([^<]*))</value>"
    r"[ \t\n]*</param>"
)
_CALL_TAIL = re.compile(r"[ \t\n]*</params>[ \t\n]*</methodCall>[ \t\n]*")
_INTEGER = re.compile(r"[-+]?[0-9]+")
# Text the fast path leaves to expat: characters XML forbids, an entity other than the five predefined ones,
# and the sequence "]]>" (not allowed in character data). Two searches, the second only when the text holds a
# "&" or "]]>": one search with the three alternatives cost ~4 µs of a call, a character class alone ~1 µs.
_FORBIDDEN_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ODD_MARKUP = re.compile(r"&(?!(?:amp|lt|gt|quot|apos);)|\]\]>")


def _plain(text: str) -> bool:
    """No carriage return, no character XML forbids, no entity but the five predefined ones, no "]]>"."""
    if "\r" in text or _FORBIDDEN_CHARACTER.search(text):
        return False
    return not (("&" in text or "]]>" in text) and _ODD_MARKUP.search(text))


def _text(raw: str) -> str:
    if "&" not in raw:
        return raw
    return (raw.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'")
            .replace("&amp;", "&"))


MAX_NESTING = 32  # arrays and structs inside one another in a request; XML-RPC calls here need 2


class NotACall(ValueError):
    """A body refused before or while it is parsed, with the reason the fault carries (docs/api.md)."""


def parse_call(body: bytes) -> tuple[tuple, str]:
    """``xmlrpc.client.loads(body, use_builtin_types=True)`` for a ``<methodCall>``, with a fast path for the
    common shape, and three refusals (:class:`NotACall`) the stdlib does not make: a document type or entity
    declaration (XML-RPC never needs one, and expanding entities costs the API thread), arrays and structs
    nested deeper than :data:`MAX_NESTING`, and a document that is not a ``<methodCall>`` (a
    ``<methodResponse>``, say).

    Calls whose parameters are all strings, integers or booleans, written the way XML-RPC clients write them
    (the stdlib's layout, any spacing between elements), are read with regular expressions: the stdlib
    parser costs about 20 µs per call in expat callbacks, a fifth of an API call. Anything else (arrays,
    structs, other types, carriage returns, other encodings, unusual entities) goes to the stdlib parser,
    which also raises for malformed input. Both paths give the same answer; a property test holds them to it.
    """
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise NotACall("document type and entity declarations are refused")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and _plain(text):
        parsed = _parse_plain(text)
        if parsed is not None:
            return parsed
    return _parse_expat(body)


def _parse_expat(body: bytes) -> tuple[tuple, str]:
    """The stdlib's unmarshaller on an expat parser of our own: the same answers and errors as
    ``xmlrpc.client.loads``, with the refusals of :func:`parse_call` made as expat reads (which also catches a
    declaration in another encoding, such as UTF-16, that the byte search cannot see)."""
    target = xmlrpc.client.Unmarshaller(use_builtin_types=True)
    parser = expat.ParserCreate(None, None)
    depth = 0
    root: list[str] = []

    def start(tag: str, attrs: dict) -> None:
        nonlocal depth
        if not root:
            root.append(tag)
            if tag != "methodCall":
                raise NotACall(f"the body is a <{tag[:40]}>, not a <methodCall>")
        if tag in ("array", "struct"):
            depth += 1
            if depth > MAX_NESTING:
                raise NotACall(f"arrays and structs nested deeper than {MAX_NESTING}")
        target.start(tag, attrs)

    def end(tag: str) -> None:
        nonlocal depth
        if tag in ("array", "struct"):
            depth -= 1
        target.end(tag)

    def declaration(*_: object) -> None:
        raise NotACall("document type and entity declarations are refused")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = target.data
    parser.StartDoctypeDeclHandler = declaration
    parser.EntityDeclHandler = declaration
    target.xml(None, None)
    parser.Parse(body, True)
    params, method = target.close(), target.getmethodname()
    if not isinstance(method, str):
        raise NotACall("the call has no <methodName>")
    return params, method


def _parse_plain(text: str) -> tuple[tuple, str] | None:
    declaration = _DECLARATION.match(text)
    position = declaration.end() if declaration else 0
    head = _CALL_HEAD.match(text, position)
    if head is None:
        return None
    position = head.end()
    params: list = []
    while (param := _PARAM.match(text, position)) is not None:
        kind, typed, empty, bare = param.groups()
        if kind is None:
            params.append("" if empty else _text(bare))
        elif kind == "string":
            params.append(_text(typed))
        elif kind == "boolean":
            if typed not in ("0", "1"):
                return None
            params.append(typed == "1")
        else:
            if not _INTEGER.fullmatch(typed):
                return None
            params.append(int(typed))
        position = param.end()
    tail = _CALL_TAIL.match(text, position)
    if tail is None or tail.end() != len(text):
        return None
    return tuple(params), head.group(1)
