"""codec.loads_toml (rtoml, with tomli as the reference) against tomli itself: on our codec's
notes of random runs, and on hand-written TOML, valid and not."""

from __future__ import annotations

import datetime
import math
import random
import re
import sys
from typing import Any

import pytest
import rtoml
import tomli

from gitmlm.cli import common
from gitmlm.core import codec, config, tags
from gitmlm.data import lock
from gitmlm.errors import MlmError


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types, keys in the same order; NaN equals NaN; -0.0 is not 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, datetime.datetime | datetime.time):
        # rtoml's tzinfo is its own class; the instant, the offset and the text are the same.
        return a == b and a.isoformat() == b.isoformat() and a.utcoffset() == b.utcoffset()
    return bool(a == b)


_CHARS = "abc xyz\"'\\\n\t\r\x01\x1f\x7f é漢😀\u2028%_.=[]#"


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(_CHARS) for _ in range(rng.randint(0, 12)))


def _scalar(rng: random.Random) -> Any:
    return rng.choice(
        [
            lambda: _text(rng),
            lambda: rng.randint(-(2**70), 2**70),
            lambda: rng.randint(-10, 10),
            lambda: rng.choice([math.nan, math.inf, -math.inf, -0.0, 0.0, 1e300, 5e-324, 0.1]),
            lambda: rng.uniform(-1e6, 1e6),
            lambda: rng.random() < 0.5,
        ]
    )()


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 2 and roll < 0.15:
        return {_text(rng) or "k": _value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if depth < 2 and roll < 0.3:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return _scalar(rng)


def test_our_notes_read_the_same_as_tomli_reads_them() -> None:
    rng = random.Random(12)
    for _ in range(300):
        runs = {}
        for i in range(rng.randint(1, 4)):
            table: dict[str, Any] = {"name": _text(rng), "status": "finished"}
            table["started"] = "2026-11-30T06:23:32.846461Z"
            table["commit"] = "a" * 40
            table["params"] = {_text(rng) or "p": _value(rng) for _ in range(rng.randint(0, 5))}
            numbers = [math.nan, math.inf, -0.0, 1e300, 5e-324, rng.random(), -rng.random()]
            table["metrics"] = {_text(rng) or "m": rng.choice(numbers) for _ in range(2)}
            table["tags"] = {_text(rng) or "t": _text(rng) for _ in range(2)}
            table["command"] = [_text(rng) for _ in range(2)]
            runs[f"01k742sg00fnjncj4z9h77bq{i:02d}"] = table
        text = codec.encode_doc(runs).decode()
        assert same(codec.loads_toml(text), tomli.loads(text)), text


VALID = [
    "a = 1979-05-27T07:32:00Z\nb = 1979-05-27T00:32:00-07:00\nc = 1979-05-27T07:32:00",
    "d = 1979-05-27\ne = 07:32:00.5\nf = 1979-05-27T07:32:00.999999999Z",
    "g = 1979-05-27 07:32:00Z\nh = 1979-05-27t07:32:00z",
    'a = "\\u00e9\\U0001F600\\t\\"x\\\\"\nb = \'lit\\\\\'\nc = """\nmulti\\\n   line"""',
    "a = 99999999999999999999\nb = -9223372036854775808\nc = 0xDEAD_BEEF\nd = 0o17\ne = 0b101",
    "a = nan\nb = -nan\nc = +inf\nd = -0.0\ne = 1e300\nf = 1e1_000\ng = 6.02e+23",
    "a = {x = 1, y = {z = 2}}\nb = [1, 'x', 2.0, [1, 2], {c = 1}]\nc = [\n1,\n2,\n]",
    "[[a]]\nx = 1\n[[a]]\nx = 2\n[b.c]\nd = 1",
    '"" = 1\n"a.b".c = 2\nd.e.f = 3',
    "a = 1\r\nb = 2\r\n",
    'a = "x\ty"\n# comment é\nb = true',
    "a = {x = 1,\n y = 2}\nb = {x = 1,}",  # TOML 1.1, which tomli >= 2.3 reads
]

INVALID = [
    "a = ",
    "a = 1 b = 2",
    "a = 1\na = 2",
    "[a]\nx = 1\n[a]\ny = 2",
    'a = "x\x01y"',
    'a = "x\ny"',
    "a = 01",
    "a.b = 1\n[a]\nb = 2",
    "[[a]]\n[a]",
    "\ufeffa = 1",
    "a = 1\rb = 2",
    'a = "\\uD800"',
    'a = "\\q"',
    "a = 1.",
    "a = 1__0",
    "a = 1979-13-27",
    'a = "x"\x00',
    'a = "x\x7f"',
    "a = True",
    "a = 07:32:00Z",
    "# x\x01\na = 1",
    "a = [1, 2",
    "a = {x = 1",
    "[a",
    "a = 'x",
    'a = """x',
    "= 1",
    "a b = 1",
    "a = 1e",
    "a = .5",
    "a = +0x10",
    "a = 2026-11-30T06:23:32.Z",
    "a = [1,,2]",
    "schema = 1\n[runs.x]\nname = 'a'\n[runs.x]",
]


@pytest.mark.parametrize("text", VALID)
def test_valid_toml_reads_as_tomli_reads_it(text: str) -> None:
    assert same(codec.loads_toml(text), tomli.loads(text))


@pytest.mark.parametrize("text", INVALID)
def test_invalid_toml_is_a_note_error_and_rtoml_rejects_it_too(text: str) -> None:
    with pytest.raises(tomli.TOMLDecodeError):
        tomli.loads(text)
    with pytest.raises(codec.NoteError, match="not valid TOML"):
        codec.loads_toml(text)
    if not text.startswith("\ufeff"):  # a BOM never reaches rtoml
        with pytest.raises(rtoml.TomlParsingError):
            rtoml.loads(text)


def test_decode_doc_errors_are_unchanged() -> None:
    with pytest.raises(codec.NoteError, match="not valid TOML"):
        codec.decode_doc(b"\xff\xfe")
    with pytest.raises(codec.NoteError, match="unsupported schema"):
        codec.decode_doc(b"schema = 3\n")
    with pytest.raises(codec.NoteError, match="must be a table of run tables"):
        codec.decode_doc(b"schema = 1\nruns = 1\n")


RUN = 'schema = 1\n\n[runs.01k0000000000000000000000a]\nname = "a"\nstatus = "finished"\n'


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ("x = 2026-11-30T10:00:00Z", "params.x"),
        ("x = 2026-11-30", "params.x"),
        ("x = 10:00:00", "params.x"),
        ("x = 2026-11-30 10:00:00", "params.x"),
        ("x = [1, 2026-11-30]", "params.x[1]"),
        ("x = [\n  2026-11-30,\n]", "params.x[0]"),
        ("x = {a = {b = 2026-11-30}}", "params.x.a.b"),
    ],
)
def test_a_bare_toml_date_is_refused_with_the_spot_to_fix(line: str, where: str) -> None:
    """Nothing downstream carries a date object (the JSON cache, the tables, pandas): a hand edit
    that leaves one is a clear NoteError, not a traceback later."""
    runs = codec.decode_doc(f"{RUN}\n[runs.01k0000000000000000000000a.params]\n{line}\n".encode())
    spot = f"runs.01k0000000000000000000000a.{where} is a bare TOML date or time"
    with pytest.raises(codec.NoteError, match=re.escape(spot)):
        codec.refuse_dates(runs)


def test_a_date_inside_a_string_is_just_text() -> None:
    text = f'{RUN}note = "x = 2026-11-30, [10:00:00"\n'
    runs = codec.decode_doc(text.encode())
    codec.refuse_dates(runs)
    assert runs["01k0000000000000000000000a"]["note"] == "x = 2026-11-30, [10:00:00"


DEEP = {
    "arrays": "a = " + "[" * 10_000 + "]" * 10_000,
    "inline tables": "a = " + "{b = " * 10_000 + "1" + "}" * 10_000,
    "a header of 5,000 parts": "[" + ".".join(["a"] * 5_000) + "]\nx = 1",
    "a dotted key of 5,000 parts": ".".join(["a"] * 5_000) + " = 1",
}
NESTED = {  # what tomli reads, rtoml refuses, and a listing could not recurse through
    "a key of 999 parts": ".".join(["a"] * 999) + " = 1",
    "a header and a key of 300 parts each": "["
    + ".".join(["a"] * 300)
    + "]\n"
    + ".".join(["b"] * 300)
    + " = 1",
}


@pytest.mark.parametrize("text", DEEP.values(), ids=list(DEEP))
def test_a_document_too_deep_is_a_note_error_never_a_crash(text: str) -> None:
    """A hand-made or hostile note: a parser that recursed on the native stack would kill the
    process (toml_rs does, on the first two); tomli's RecursionError used to escape."""
    with pytest.raises(rtoml.TomlParsingError):
        rtoml.loads(text)
    with pytest.raises(RecursionError):
        tomli.loads(text)
    with pytest.raises(codec.NoteError, match="cannot be read: TOML"):
        codec.loads_toml(text)
    with pytest.raises(codec.NoteError, match="cannot be read"):
        codec.decode_doc(f"schema = 1\n{text}".encode())


@pytest.mark.parametrize("text", NESTED.values(), ids=list(NESTED))
def test_a_document_tomli_reads_but_nested_past_the_limit_is_a_note_error(text: str) -> None:
    tomli.loads(text)
    with pytest.raises(rtoml.TomlParsingError):
        rtoml.loads(text)
    with pytest.raises(codec.NoteError, match="nest deeper than 400 levels"):
        codec.loads_toml(text)


def test_a_document_nested_to_the_limit_reads() -> None:
    text = "[" + ".".join(["a"] * 200) + "]\n" + ".".join(["b"] * (codec.MAX_DEPTH - 202)) + " = 1"
    assert codec.loads_toml(text) == tomli.loads(text)


def test_other_toml_readers_give_their_error_for_a_document_too_deep() -> None:
    """tomli's RecursionError used to escape them: a tag fetched from a remote, mlm.toml,
    mlm.lock, a `-p` value."""
    # Deeper than tomli's limit (400) and than the recursion limit (the standard library's
    # tomllib has no limit of its own; a library may have raised the recursion limit).
    n = max(1_000, sys.getrecursionlimit() + 1_000)
    deep = "a = " + "[" * n + "]" * n
    message = tags.decode_message(f"register churn\n\nschema = 1\n{deep}\n")
    assert message.body == {} and (message.problem or "").startswith("its body is not TOML")
    with pytest.raises(MlmError, match=r"mlm\.toml: invalid TOML"):
        config.parse(deep)
    with pytest.raises(MlmError, match=r"mlm\.lock: invalid TOML"):
        lock.parse(deep)
    assert common.parse_value("[" * n + "]" * n) == "[" * n + "]" * n
