"""XML-RPC response bodies with 64-bit integers: the one ``<i8>`` marshaller of the project.

XML-RPC's ``<int>`` is 32-bit and Python's stdlib marshaller refuses larger integers ("int exceeds XML-RPC
limits"), although it reads ``<i8>`` (reference/ecosystem-notes.md §0.4). Balances above 21.47 BAY are common,
so every response goes through :func:`dump_response`, which writes ``<i8>`` outside the int32 range.
"""

from __future__ import annotations

import xmlrpc.client
from typing import Any, Callable

_INT32 = range(-(2**31), 2**31)


class I8Marshaller(xmlrpc.client.Marshaller):
    """The stdlib marshaller, except that integers outside int32 are written as ``<i8>`` instead of failing."""

    dispatch = dict(xmlrpc.client.Marshaller.dispatch)

    def dump_long(self, value: int, write: Callable[[str], Any]) -> None:
        tag = "int" if value in _INT32 else "i8"
        write(f"<value><{tag}>{int(value)}</{tag}></value>\n")

    dispatch[int] = dump_long


def dump_response(value: tuple | xmlrpc.client.Fault) -> bytes:
    """A methodResponse body (a one-value tuple or a Fault), with ``<i8>`` for large integers."""
    body = I8Marshaller("utf-8", allow_none=False).dumps(value)
    text = "<?xml version='1.0'?>\n<methodResponse>\n" + body + "</methodResponse>\n"
    return text.encode("utf-8", "xmlcharrefreplace")
