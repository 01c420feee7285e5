"""The `--where` filter language: a recursive-descent parser and a compiler to closures.

    metrics.acc >= 0.9 and (params.model in ('cnn', "mlp") or tags.team like 'vis%')
    status != 'failed' and not params.`a.b` is null and started >= '2026-11-01'

Columns are dotted names of a flattened run row; a segment is word characters and `-`, or
backtick-quoted (a doubled backtick stands for one). Comparisons are SQL-like: a missing
column, or a value of another kind (string, number, bool), makes a comparison false — `!=`
too — and `not` is plain negation. `not in (a, b)` means `!= a and != b`. `like`/`ilike` use
`%` and `_`, a backslash escapes them; they match strings, and numbers and booleans by their
text (`str()`, as MLflow stores a param). A quoted number equals the number it spells
(`params.batch_size = '2'` matches 2), as MLflow users write every param.

MLflow's spellings mean what they mean in MLflow's `search_runs`: the prefixes `metric.`,
`param.`, `tag.`, `attribute(s).`/`attr.`/`run.`, the attributes `run_name`, `user_id`,
`start_time`/`end_time` (milliseconds since the epoch) and `created`, `tags.mlflow.runName`, and
statuses in any case (`status = 'FINISHED'`). Columns may be double-quoted like MLflow's:
`metrics."f1 score"`.

The input is scanned by regexes on the parser's demand rather than by a separate tokenizer,
because the same characters mean different things in a column (`x-1e3`) and a value (`-1e3`).
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeAlias, assert_never

from gitmlm.errors import MlmError

Value: TypeAlias = str | int | float | bool
Row: TypeAlias = Mapping[str, object]
Predicate: TypeAlias = Callable[[Row], bool]


@dataclass(frozen=True)
class Compare:
    column: str
    op: str  # normalised: = != < <= > >=
    value: Value


@dataclass(frozen=True)
class In:
    column: str
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True)
class Like:
    column: str
    pattern: str
    negated: bool = False
    ignore_case: bool = False


@dataclass(frozen=True)
class IsNull:
    column: str
    negated: bool = False


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class And:
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Expr, ...]


Expr: TypeAlias = Compare | In | Like | IsNull | Not | And | Or

_WORD = re.compile(r"[\w-]+")
_QUOTED_NAME = re.compile(r"`((?:[^`]|``)*)`")
_OPERATOR = re.compile(r"[=!<>]+")
_OPERATORS = {op: op for op in ("=", "!=", "<", "<=", ">", ">=")} | {"==": "=", "<>": "!="}
# The lookahead rejects `1abc` and `1.2.3` as a whole instead of reading a prefix of them.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.])")
_STRINGS = {q: re.compile(rf"{q}((?:[^{q}\\]|\\.)*){q}", re.DOTALL) for q in "'\""}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}
_WORDS: dict[str, Value] = {"true": True, "false": False, "nan": math.nan, "inf": math.inf}
_WORDS["-inf"] = -math.inf
# Each `(` or `not` costs a few stack frames; stop long before Python's recursion limit.
_MAX_DEPTH = 100


# MLflow's names for the same columns. Prefixes of data columns, then attributes: bare, or after
# an attribute prefix. `start_time`/`end_time` are derived columns (epoch milliseconds, as
# MLflow's) that the caller adds to a row when a query names them.
_PREFIXES = {"metric": "metrics", "param": "params", "parameter": "params", "parameters": "params"}
_PREFIXES["tag"] = "tags"
_ATTRIBUTE_PREFIXES = ("attribute", "attributes", "attr", "run")
_ATTRIBUTES = {"run_name": "name", "run name": "name", "Run name": "name", "Run Name": "name"}
_ATTRIBUTES |= {"user_id": "user", "created": "start_time", "Created": "start_time"}
_TAGS = {"tags.mlflow.runName": "name", "tags.mlflow.user": "user"}
DERIVED = ("start_time", "end_time")


def may_name_derived(text: str) -> bool:
    """Whether a filter or order text may name a DERIVED column (under any of its names): a
    textual test, so a false alarm is possible (it only costs the caller adding them)."""
    lowered = text.lower()
    names = (*DERIVED, *(k for k, v in _ATTRIBUTES.items() if v in DERIVED))
    return any(name.lower() in lowered for name in names)


DATA_PREFIXES = ("params.", "metrics.", "tags.", "datasets.")
# MLflow writes statuses in upper case; ours are lower case, so status values compare caselessly.
_CASELESS = "status"


def parse(text: str) -> Expr:
    """The syntax tree of a `--where` expression; MlmError pointing at the column if it is bad."""
    return _Parser(text).parse()


def compile_where(
    text: str, known: Collection[str] | None = None, open_prefixes: tuple[str, ...] = ()
) -> Predicate:
    """Parse once; the returned predicate is cheap enough to run on every row. With `known`, a
    column that is none of them (nor starts with one of `open_prefixes`) is an error."""
    return _compile(bind(parse(text), known, open_prefixes))


def canonical(column: str, known: Collection[str] | None = None) -> str:
    """Our name for a column spelled the MLflow way; a column the rows have is kept as it is."""
    if known is not None and column in known:
        return column
    head, dot, rest = column.partition(".")
    if dot and head in _PREFIXES:
        column = f"{_PREFIXES[head]}.{rest}"
    elif dot and head in _ATTRIBUTE_PREFIXES:
        column = rest
    return _TAGS.get(column, _ATTRIBUTES.get(column, column))


def check_column(
    column: str, known: Collection[str], open_prefixes: tuple[str, ...] = (), what: str = "--where"
) -> None:
    """MlmError for a column no row has, with the nearest known name as a suggestion."""
    if column in known or column.startswith(open_prefixes):
        return
    tail = [k for k in known if k.endswith(f".{column}") or k.partition(".")[2] == column]
    near = tail or difflib.get_close_matches(column, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {sorted(near)[0]}?" if near else ""
    raise MlmError(f"unknown column {column!r} in {what}: no run has it{hint} {_COLUMNS_HINT}")


_COLUMNS_HINT = (
    f"(columns are {', '.join(DATA_PREFIXES)}* of the runs, and run_id name status commit "
    "branch started ended user host)"
)


def grammar() -> dict[str, Any]:
    """The language's tables, JSON-ready: the static report's evaluator (gitmlm/ui/static/
    where.js) reads them from its page, so the tokens, keywords, MLflow spellings and limits
    live here only. Regexes are given as their source (Python's syntax; where.js reads `\\w` as
    Python does, Unicode letters and digits); non-finite words as text."""
    return {
        "word": _WORD.pattern,
        "quoted_name": _QUOTED_NAME.pattern,
        "operator": _OPERATOR.pattern,
        "operators": _OPERATORS,
        "number": _NUMBER.pattern,
        "strings": {q: r.pattern for q, r in _STRINGS.items()},
        "escape": _ESCAPE.pattern,
        "escapes": _ESCAPES,
        "like_token": _LIKE_TOKEN.pattern,
        "words": {k: v if isinstance(v, bool) else repr(v) for k, v in _WORDS.items()},
        "max_depth": _MAX_DEPTH,
        "prefixes": _PREFIXES,
        "attribute_prefixes": list(_ATTRIBUTE_PREFIXES),
        "attributes": _ATTRIBUTES,
        "tags": _TAGS,
        "caseless": _CASELESS,
        "data_prefixes": list(DATA_PREFIXES),
        "columns_hint": _COLUMNS_HINT,
    }


def bind(
    expr: Expr, known: Collection[str] | None = None, open_prefixes: tuple[str, ...] = ()
) -> Expr:
    """`expr` on our column names (MLflow's spellings translated); with `known`, unknown
    columns are errors."""
    if isinstance(expr, Not):
        return Not(bind(expr.operand, known, open_prefixes))
    if isinstance(expr, And):
        return And(tuple(bind(e, known, open_prefixes) for e in expr.operands))
    if isinstance(expr, Or):
        return Or(tuple(bind(e, known, open_prefixes) for e in expr.operands))
    column = canonical(expr.column, known)
    if known is not None:
        check_column(column, known, open_prefixes)
    caseless = column == _CASELESS
    if isinstance(expr, Compare):
        return Compare(column, expr.op, _lower(expr.value) if caseless else expr.value)
    if isinstance(expr, In):
        values = tuple(_lower(v) for v in expr.values) if caseless else expr.values
        return In(column, values, expr.negated)
    if isinstance(expr, Like):
        return Like(column, expr.pattern, expr.negated, expr.ignore_case or caseless)
    return IsNull(column, expr.negated)


def _lower(value: Value) -> Value:
    return value.lower() if isinstance(value, str) else value


def parse_order(text: str) -> list[tuple[str, bool]]:
    """`metrics.acc desc, -name, metrics.`f1 score`` -> [(column, descending)]; names are
    quoted as in `--where` (MLflow's backticks included)."""
    return _Parser(text, "--order-by").order()


def columns(expr: Expr) -> set[str]:
    """The column names `expr` refers to."""
    if isinstance(expr, Not):
        return columns(expr.operand)
    if isinstance(expr, And | Or):
        return set().union(*(columns(e) for e in expr.operands))
    return {expr.column}


class _Parser:
    def __init__(self, text: str, option: str = "--where") -> None:
        self.text = text
        self.option = option
        self.pos = 0
        self.depth = 0

    def fail(self, what: str, pos: int | None = None) -> NoReturn:
        at = self.pos if pos is None else pos
        # Whitespace becomes a plain space so the caret lines up under a tab or newline.
        shown = re.sub(r"\s", " ", self.text)
        raise MlmError(
            f"bad {self.option} expression at column {at + 1}: {what}\n{shown}\n{' ' * at}^"
        )

    def order(self) -> list[tuple[str, bool]]:
        keys: list[tuple[str, bool]] = []
        while True:
            self.skip()
            if self.pos == len(self.text):
                return keys
            if self.take(","):
                continue  # an empty item, as a trailing comma makes
            descending = self.take("-")
            column = self.column()
            word = self.keyword("asc", "desc")
            if word is not None:
                descending = word == "desc"
            keys.append((column, descending))
            self.skip()
            if self.pos < len(self.text) and not self.take(","):
                self.fail("expected ',', 'asc', 'desc' or the end: COLUMN [asc|desc] or -COLUMN")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def take(self, literal: str) -> bool:
        self.skip()
        if self.text.startswith(literal, self.pos):
            self.pos += len(literal)
            return True
        return False

    def keyword(self, *words: str) -> str | None:
        self.skip()
        m = _WORD.match(self.text, self.pos)
        if m is not None and m.group().lower() in words:
            self.pos = m.end()
            return m.group().lower()
        return None

    def parse(self) -> Expr:
        self.skip()
        if self.pos == len(self.text):
            self.fail("expected an expression, got nothing")
        expr = self.or_()
        self.skip()
        if self.pos < len(self.text):
            if self.text[self.pos] == ")":
                self.fail("unbalanced ')': no '(' to close")
            self.fail("expected 'and', 'or' or the end of the expression")
        return expr

    def or_(self) -> Expr:
        operands = [self.and_()]
        while self.keyword("or"):
            operands.append(self.and_())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_(self) -> Expr:
        operands = [self.not_()]
        while self.keyword("and"):
            operands.append(self.not_())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def not_(self) -> Expr:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            self.fail(f"expected at most {_MAX_DEPTH} nested parentheses or 'not's")
        expr: Expr
        if self.keyword("not"):
            expr = Not(self.not_())
        elif self.take("("):
            opened = self.pos  # the index after '(' is the 1-based column of '('
            expr = self.or_()
            if not self.take(")"):
                self.fail(f"expected ')' to close the '(' at column {opened}")
        else:
            expr = self.predicate()
        self.depth -= 1
        return expr

    def predicate(self) -> Expr:
        column = self.column()
        negated = self.keyword("not") is not None
        word = self.keyword("in", "like", "ilike", *(() if negated else ("is",)))
        if negated and word is None:
            self.fail("expected 'in', 'like' or 'ilike' after 'not'")
        if word == "in":
            return In(column, self.value_list(), negated)
        if word in ("like", "ilike"):
            self.skip()
            at = self.pos
            pattern = self.value()
            if not isinstance(pattern, str):
                self.fail(f"expected a quoted pattern after '{word}'", at)
            return Like(column, pattern, negated, ignore_case=word == "ilike")
        if word == "is":
            negated = self.keyword("not") is not None
            if not self.keyword("null"):
                self.fail("expected 'null' or 'not null' after 'is'")
            return IsNull(column, negated)
        self.skip()
        m = _OPERATOR.match(self.text, self.pos)
        if m is None:
            self.fail("expected an operator (= != < <= > >= in, not in, like, ilike, is)")
        if m.group() not in _OPERATORS:
            self.fail(f"expected an operator, not the unknown '{m.group()}'")
        self.pos = m.end()
        return Compare(column, _OPERATORS[m.group()], self.value())

    def column(self) -> str:
        self.skip()
        segments = [self.segment("expected a column name")]
        while self.text.startswith(".", self.pos):
            self.pos += 1
            segments.append(self.segment("expected a name after '.'"))
        return ".".join(segments)

    def segment(self, expected: str) -> str:
        if self.text.startswith("`", self.pos):
            m = _QUOTED_NAME.match(self.text, self.pos)
            if m is None:
                self.fail("expected the closing ` of this quoted name")
            self.pos = m.end()
            return m.group(1).replace("``", "`")
        if self.text.startswith('"', self.pos):  # MLflow's quoting of a column name
            m = _STRINGS['"'].match(self.text, self.pos)
            if m is None:
                self.fail('expected the closing " of this quoted name')
            self.pos = m.end()
            return _ESCAPE.sub(lambda e: _ESCAPES.get(e.group(1), e.group()), m.group(1))
        m = _WORD.match(self.text, self.pos)
        if m is None:
            self.fail(expected)
        self.pos = m.end()
        return m.group()

    def value_list(self) -> tuple[Value, ...]:
        if not self.take("("):
            self.fail("expected '(' and a list of values after 'in'")
        values = [self.value()]
        while not self.take(")"):
            if not self.take(","):
                self.fail("expected ',' or ')' in the list of values")
            values.append(self.value())
        return tuple(values)

    def value(self) -> Value:
        self.skip()
        text, pos = self.text, self.pos
        quote = text[pos : pos + 1]
        if quote in ("'", '"'):
            m = _STRINGS[quote].match(text, pos)
            if m is None:
                self.fail(f"expected the closing {quote} of this string")
            self.pos = m.end()
            return _ESCAPE.sub(lambda e: _ESCAPES.get(e.group(1), e.group()), m.group(1))
        m = _NUMBER.match(text, pos)
        if m is not None:
            self.pos = m.end()
            literal = m.group()
            return float(literal) if any(c in literal for c in ".eE") else int(literal)
        m = _WORD.match(text, pos)
        if m is not None and m.group().lower() in _WORDS:
            self.pos = m.end()
            return _WORDS[m.group().lower()]
        if m is not None and m.group().lower() == "null":
            self.fail("expected a value; test for a missing column with 'is null'")
        if m is not None:
            self.fail(f"expected a value; quote strings, as in '{m.group()}'")
        self.fail("expected a value (a number, a quoted string, true, false, nan or inf)")


COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_LIKE_TOKEN = re.compile(r"\\(.)|(%)|(_)|([^\\%_]+|\\)", re.DOTALL)


def _kind(value: object) -> str | None:
    """Which values may be compared: bool is its own kind, int and float are one."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    return None


def _like_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    for escaped, percent, underscore, literal in _LIKE_TOKEN.findall(pattern):
        parts.append(".*" if percent else "." if underscore else re.escape(escaped or literal))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _spelled(text: str) -> Value | None:
    """The number or boolean a string spells (`'2'`, `'0.1'`, `'True'`), else None."""
    if _NUMBER.fullmatch(text):
        return float(text) if any(c in text for c in ".eE") else int(text)
    return {"true": True, "false": False}.get(text.lower())


def _comparable(got: object, value: Value, spelled: Value | None) -> tuple[Any, Any] | None:
    """The two sides as one kind, or None: a quoted number meets a number, and a number kept as
    text (a param written by hand) meets an unquoted one."""
    kind = _kind(got)
    if kind == _kind(value):
        return got, value
    if spelled is not None and kind == _kind(spelled):
        return got, spelled
    if isinstance(got, str) and _kind(value) in ("number", "bool"):
        again = _spelled(got)
        if again is not None and _kind(again) == _kind(value):
            return again, value
    return None


def _text(got: object) -> str | None:
    """What `like` matches: a string, or a number's or boolean's text as MLflow stores it."""
    if isinstance(got, str):
        return got
    if isinstance(got, int | float):
        return str(got)
    return None


Leaf: TypeAlias = Compare | In | Like | IsNull
ValueTest: TypeAlias = Callable[[object], bool]


def value_test(expr: Leaf) -> ValueTest:
    """A leaf's test of one value (None for a missing column): the row predicate applies it to
    `row.get(column)`, and a column-wise evaluator (tracking.wherecols) to each value of a
    column, so both give the same answers by construction."""
    if isinstance(expr, Compare):
        value, kind, test = expr.value, _kind(expr.value), COMPARE[expr.op]
        spelled = _spelled(value) if isinstance(value, str) else None

        def compare(got: object) -> bool:
            if _kind(got) == kind:  # the common case first: no conversion
                return test(got, value)
            pair = _comparable(got, value, spelled)
            return pair is not None and test(*pair)

        return compare
    if isinstance(expr, In):
        return _compile_in(expr)
    if isinstance(expr, Like):
        negated = expr.negated
        regex = _like_regex(expr.pattern, expr.ignore_case)
        return lambda got: (
            (text := _text(got)) is not None and ((regex.fullmatch(text) is None) == negated)
        )
    if isinstance(expr, IsNull):
        negated = expr.negated
        return lambda got: (got is None) != negated
    assert_never(expr)


def _compile(expr: Expr) -> Predicate:
    if isinstance(expr, Compare | In | Like | IsNull):
        column, test = expr.column, value_test(expr)
        return lambda row: test(row.get(column))
    if isinstance(expr, Not):
        inner = _compile(expr.operand)
        return lambda row: not inner(row)
    if isinstance(expr, And):
        conjuncts = [_compile(e) for e in expr.operands]

        # A plain loop: all() over a generator costs twice as much per row.
        def every(row: Row) -> bool:
            for test in conjuncts:  # noqa: SIM110
                if not test(row):
                    return False
            return True

        return every
    if isinstance(expr, Or):
        disjuncts = [_compile(e) for e in expr.operands]

        def some(row: Row) -> bool:
            for test in disjuncts:  # noqa: SIM110
                if test(row):
                    return True
            return False

        return some
    assert_never(expr)


def _compile_in(expr: In) -> ValueTest:
    members = [(v, _spelled(v) if isinstance(v, str) else None) for v in expr.values]
    if not expr.negated:
        # `= a or = b`: one set per kind, so that True is not found among the numbers as 1 is.
        groups: dict[str | None, set[Value]] = {}
        for value, spelled in members:
            for v in (value, spelled):
                if v is not None and not (isinstance(v, float) and math.isnan(v)):
                    groups.setdefault(_kind(v), set()).add(v)

        def member(got: object) -> bool:
            if got in groups.get(_kind(got), ()):
                return True
            again = _spelled(got) if isinstance(got, str) else None
            return again is not None and again in groups.get(_kind(again), ())

        return member

    def outside(got: object) -> bool:  # `!= a and != b`: false where a member is of another kind
        for value, spelled in members:
            pair = _comparable(got, value, spelled)
            if pair is None or pair[0] == pair[1]:
                return False
        return True

    return outside
