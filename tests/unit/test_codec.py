"""The XML-RPC codec: the fast request parser agrees with the stdlib parser, and responses carry <i8>."""

from __future__ import annotations

import xmlrpc.client
from xml.parsers.expat import ExpatError

import pytest
from hypothesis import given
from hypothesis import strategies as st

from halo_exchange.rpc import codec
from halo_exchange.rpc.codec import MAX_NESTING, NotACall, dump_response, parse_call

scalars = st.one_of(
    st.text(),
    st.text(alphabet="ab<>&'\"]; \n\t"),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    st.booleans(),
)
method_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_.]{0,20}", fullmatch=True)


def _typed(parsed):
    """The parse with every parameter's type beside it: ``True == 1`` must not hide a bool/int mix-up."""
    params, method = parsed
    return [(type(p), p) for p in params], method


def _stdlib(body: bytes):
    try:
        return _typed(xmlrpc.client.loads(body, use_builtin_types=True))
    except Exception as exc:
        return type(exc)


def _ours(body: bytes):
    try:
        return _typed(parse_call(body))
    except Exception as exc:
        return type(exc)


@given(st.lists(scalars, max_size=6).map(tuple), method_names)
def test_calls_as_clients_write_them_parse_as_the_stdlib_reads_them(params, name) -> None:
    body = xmlrpc.client.dumps(params, name).encode("utf-8")
    assert _ours(body) == _stdlib(body)


@given(st.lists(scalars, max_size=4).map(tuple), method_names, st.data())
def test_edited_calls_parse_as_the_stdlib_reads_them_or_fail_alike(params, name, data) -> None:
    """Whatever is spliced into a call (spaces, entities, other tags, junk), both parsers agree."""
    text = xmlrpc.client.dumps(params, name)
    position = data.draw(st.integers(min_value=0, max_value=len(text)))
    insert = data.draw(st.sampled_from([" ", "\n", "\r\n", "&amp;", "&#65;", "&nbsp;", "<string>", "</value>",
                                        "<i4>7</i4>", "]]>", "\x01", "\ufeff", "<!-- c -->", "<![CDATA[x]]>",
                                        "<int> 5 </int>", "<boolean>2</boolean>", "<params/>"]))
    body = (text[:position] + insert + text[position:]).encode("utf-8")
    ours, stdlib = _ours(body), _stdlib(body)
    if ours is NotACall:  # refused early: a root other than <methodCall>, which the stdlib fails or misreads
        assert isinstance(stdlib, type) or stdlib[1] is None
    else:
        assert ours == stdlib


@pytest.mark.parametrize("body", [
    b"<?xml version='1.0'?>\n<methodCall>\n<methodName>Trade</methodName>\n<params>\n<param>\n<value><string>karen"
    b"</string></value>\n</param>\n<param>\n<value><int>100000000</int></value>\n</param>\n</params>\n</methodCall>\n",
    b'<?xml version="1.0" encoding="UTF-8"?><methodCall><methodName>GetBalance</methodName><params><param><value>'
    b"dave</value></param><param><value><string/></value></param></params></methodCall>",
    b"<methodCall><methodName>GetCycle</methodName><params></params></methodCall>",
])
def test_common_calls_take_the_fast_path(body, monkeypatch) -> None:
    """The shapes clients send are read without expat (else the fast path would be dead code)."""
    expected = xmlrpc.client.loads(body, use_builtin_types=True)
    monkeypatch.setattr(codec, "_parse_expat", None)  # any fallback would now raise TypeError
    assert parse_call(body) == expected


def test_other_types_and_encodings_fall_back_to_the_stdlib() -> None:
    call = xmlrpc.client.dumps((["a", "b"], {"min": 1}, 1.5, None), "ExchangeSettings", allow_none=True)
    assert parse_call(call.encode()) == xmlrpc.client.loads(call.encode(), use_builtin_types=True)
    latin = "<?xml version='1.0' encoding='iso-8859-1'?><methodCall><methodName>x</methodName><params><param>" \
            "<value>caf\xe9</value></param></params></methodCall>"
    assert parse_call(latin.encode("latin-1")) == (("caf\xe9",), "x")
    with pytest.raises((ValueError, ExpatError)):
        parse_call(b"<methodCall><methodName>x</methodName><params><param><value><int></int>")


def test_responses_write_i8_outside_int32() -> None:
    body = dump_response(({"big": 2**40, "small": -(2**31)},))
    assert b"<i8>1099511627776</i8>" in body and b"<int>-2147483648</int>" in body
    assert xmlrpc.client.loads(body) == (({"big": 2**40, "small": -(2**31)},), None)


def _nested(depth: int) -> bytes:
    value = "<array><data><value>" * depth + "<string>x</string>" + "</value></data></array>" * depth
    return (f"<?xml version='1.0'?><methodCall><methodName>Deposit</methodName><params><param><value>"
            f"<string>bobby</string></value></param><param><value>{value}</value></param></params>"
            f"</methodCall>").encode()


def test_nesting_beyond_the_limit_is_refused_at_parse_time() -> None:
    assert parse_call(_nested(MAX_NESTING)) == parse_call(_nested(MAX_NESTING)) and MAX_NESTING == 32
    for depth in (MAX_NESTING + 1, 1001, 100_000):
        with pytest.raises(NotACall, match="nested deeper than 32"):
            parse_call(_nested(depth))
    struct = "<struct><member><name>a</name><value>" * 40 + "1" + "</value></member></struct>" * 40
    with pytest.raises(NotACall, match="nested deeper"):
        parse_call(f"<methodCall><methodName>x</methodName><params><param><value>{struct}</value></param>"
                   f"</params></methodCall>".encode())


@pytest.mark.parametrize("body", [
    xmlrpc.client.dumps((1,), methodresponse=True).encode(),
    xmlrpc.client.dumps(xmlrpc.client.Fault(1, "x"), methodresponse=True).encode(),
    b"<params><param><value>1</value></param></params>",
    b"<methodResponse><methodName>Trade</methodName><params></params></methodResponse>",
    b"<methodCall><params></params></methodCall>",
])
def test_a_body_that_is_not_a_method_call_is_refused(body) -> None:
    with pytest.raises((NotACall, xmlrpc.client.Fault)):
        parse_call(body)


LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                     for i in range(1, 9))
          + b"]><methodCall><methodName>GetBalance</methodName><params><param><value>&lol8;</value></param>"
            b"</params></methodCall>")


@pytest.mark.parametrize("body", [
    LAUGHS,
    b"<!DOCTYPE methodCall><methodCall><methodName>GetCycle</methodName><params></params></methodCall>",
    b"<methodCall><methodName>GetCycle</methodName><params></params></methodCall><!ENTITY x 'y'>",
    '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE x [<!ENTITY a "b">]><methodCall><methodName>x'
    '</methodName><params></params></methodCall>'.encode("utf-16"),  # the byte search cannot see this one
])
def test_document_type_and_entity_declarations_are_refused_before_expansion(body) -> None:
    with pytest.raises(NotACall, match="declarations are refused"):
        parse_call(body)
