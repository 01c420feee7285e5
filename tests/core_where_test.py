from __future__ import annotations

import math

import pytest

from gitmlm.core.where import And, Compare, In, IsNull, Like, Not, Or, columns, compile_where, parse
from gitmlm.errors import MlmError

ROW: dict[str, object] = {
    "run_id": "01jc5x7k2m",
    "name": "baseline",
    "status": "finished",
    "started": "2026-11-03T10:00:00Z",
    "params.lr": 0.001,
    "params.epochs": 10,
    "params.model.depth": 4,
    "params.model.name": "resnet_50%",
    "params.a.b": "dotted",
    "params.shuffle": True,
    "params.seed": 0,
    "metrics.acc": 0.91,
    "metrics.val acc": 0.88,
    "metrics.loss": math.nan,
    "metrics.best": math.inf,
    "metrics.worst": -math.inf,
    "metrics.Genauigkeit-ü": 0.5,
    "tags.team": "Vision",
    "tags.empty": "",
    "datasets.train": "sha256:abc",
    "acc": 1,
}


def matches(expr: str, row: dict[str, object] = ROW) -> bool:
    return compile_where(expr)(row)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("params.epochs = 10", True),
        ("params.epochs == 10", True),
        ("params.epochs != 10", False),
        ("params.epochs <> 11", True),
        ("params.epochs < 11", True),
        ("params.epochs < 10", False),
        ("params.epochs <= 10", True),
        ("params.epochs > 9", True),
        ("params.epochs > 10", False),
        ("params.epochs >= 10", True),
        ("params.epochs = 10.0", True),  # int and float compare numerically
        ("params.lr = 1e-3", True),
        ("params.lr < 1E-2", True),
        ("params.lr > -2.5", True),
        ("params.lr = .001", True),
        ("params.model.depth = +4", True),
        ("status = 'finished'", True),
        ('status = "finished"', True),
        ("status = 'Finished'", True),  # statuses are caseless, as MLflow writes them
        ("status != 'failed'", True),
        ("started >= '2026-11-01'", True),  # strings order lexicographically
        ("started < '2026-11-01'", False),
        ("params.shuffle = true", True),
        ("params.shuffle = TRUE", True),
        ("params.shuffle != false", True),
        ("acc = 1", True),  # a bare name is an attribute, not a metric
    ],
)
def test_comparisons(expr: str, expected: bool) -> None:
    assert matches(expr) is expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("status in ('running', 'finished')", True),
        ("status in ('running')", False),
        ("status not in ('running', 'failed')", True),
        ("status NOT IN ('finished')", False),
        ("params.epochs in (5, 10.0)", True),
        ("params.shuffle in (1)", False),  # True is not the number 1
        ("params.seed in (false)", False),  # nor is 0 False
        ("params.shuffle in (1, true)", True),
        ("params.epochs in ('10')", True),  # a quoted number is the number
        ("params.epochs not in ('10')", False),  # `!= '10'` is false: another kind
        ("params.epochs not in (1, 'a')", False),  # some member is always of another kind
        ("metrics.loss in (nan)", False),
        ("metrics.loss not in (nan)", True),
        ("metrics.acc in (nan, 0.91)", True),
        ("missing in (1, 2)", False),
        ("missing not in (1, 2)", False),
    ],
)
def test_in(expr: str, expected: bool) -> None:
    assert matches(expr) is expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("name like 'base%'", True),
        ("name like 'base'", False),  # the whole value must match
        ("name like '%line'", True),
        ("name like 'b_seline'", True),
        ("name like 'b_line'", False),
        ("name like 'BASE%'", False),
        ("name ilike 'BASE%'", True),
        ("tags.team ilike 'vision'", True),
        ("name not like 'x%'", True),
        ("name not ilike 'BASE%'", False),
        ("tags.empty like '%'", True),
        ("params.model.name like 'resnet\\_50\\%'", True),  # backslash escapes a wildcard
        ("params.model.name like 'resnet\\_5\\%'", False),
        ("name like 'a.*'", False),  # regex characters are literal
        ("params.epochs like '1%'", True),  # a number by its text, as MLflow stores it
        ("params.epochs not like '1%'", False),
        ("missing not like '%'", False),
    ],
)
def test_like(expr: str, expected: bool) -> None:
    assert matches(expr) is expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("missing is null", True),
        ("missing is not null", False),
        ("status IS NULL", False),
        ("status Is Not Null", True),
        ("tags.empty is null", False),  # an empty string is present
        ("metrics.loss is not null", True),  # NaN is a value
        ("missing = 1", False),
        ("missing != 1", False),
        ("missing < 'z'", False),
        ("not missing = 1", True),  # `not` is plain negation
    ],
)
def test_missing_columns(expr: str, expected: bool) -> None:
    assert matches(expr) is expected


def test_none_counts_as_missing() -> None:
    assert matches("x is null", {"x": None})
    assert not matches("x != 1", {"x": None})


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("status = 1", False),
        ("status != 1", False),
        ("status > 1", False),
        ("params.epochs = '10'", True),  # as MLflow users quote every param
        ("params.epochs != '10'", False),
        ("params.epochs < 'z'", False),
        ("params.shuffle = 1", False),
        ("params.shuffle != 1", False),
        ("params.seed = false", False),
        ("params.seed = 0", True),
        ("params.shuffle > 0", False),
    ],
)
def test_type_mismatch_is_false_not_an_error(expr: str, expected: bool) -> None:
    assert matches(expr) is expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("metrics.loss = nan", False),
        ("metrics.loss != nan", True),
        ("metrics.loss != 1", True),
        ("metrics.loss = 1", False),
        ("metrics.loss < 1", False),
        ("metrics.loss >= 1", False),
        ("metrics.acc = NaN", False),
        ("metrics.acc != nan", True),
        ("metrics.best = inf", True),
        ("metrics.best > 1e308", True),
        ("metrics.worst = -inf", True),
        ("metrics.worst < -1e308", True),
        ("metrics.acc < inf", True),
        ("metrics.acc > -INF", True),
    ],
)
def test_nan_and_inf(expr: str, expected: bool) -> None:
    assert matches(expr) is expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # and binds tighter than or: true or (false and false)
        ("status = 'finished' or status = 'x' and status = 'y'", True),
        ("(status = 'finished' or status = 'x') and status = 'y'", False),
        # not binds tighter than and: (not true) and true
        ("not status = 'finished' and params.epochs = 10", False),
        ("not (status = 'finished' and params.epochs = 11)", True),
        ("not not status = 'finished'", True),
        ("NOT status = 'x' AND params.epochs = 10 OR missing = 1", True),
        ("((((status = 'finished'))))", True),
        ("status = 'x' or status = 'y' or params.epochs = 10", True),
        ("status = 'finished' and params.epochs = 10 and metrics.acc > 0.9", True),
        ("status = 'finished' and params.epochs = 10 and metrics.acc > 0.95", False),
    ],
)
def test_boolean_logic_and_precedence(expr: str, expected: bool) -> None:
    assert matches(expr) is expected


def test_precedence_in_the_tree() -> None:
    tree = parse("a = 1 or not b = 2 and c = 3")
    b_and_c = And((Not(Compare("b", "=", 2)), Compare("c", "=", 3)))
    assert tree == Or((Compare("a", "=", 1), b_and_c))


def test_tree_of_every_predicate() -> None:
    assert parse("x not in (1, 'a', true)") == In("x", (1, "a", True), negated=True)
    assert parse("x ilike 'a%'") == Like("x", "a%", ignore_case=True)
    assert parse("x is not null") == IsNull("x", negated=True)
    assert parse("x <> 2.5") == Compare("x", "!=", 2.5)
    assert parse("x == 7") == Compare("x", "=", 7)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r"'it\'s'", "it's"),
        (r'"say \"hi\""', 'say "hi"'),
        ('"it\'s"', "it's"),
        ("'a \"b\"'", 'a "b"'),
        (r"'a\\b'", "a\\b"),
        (r"'tab\tnew\nline'", "tab\tnew\nline"),
        (r"'100\%'", "100\\%"),  # unknown escapes stay, so like patterns can use them
        ("'with spaces and = and ( and '' '", None),
        ("''", ""),
        ("'ünïcødé ✓'", "ünïcødé ✓"),
    ],
)
def test_string_quoting(text: str, value: str | None) -> None:
    if value is None:  # a doubled quote is not an escape: it ends one string, starts another
        with pytest.raises(MlmError):
            parse(f"x = {text}")
    else:
        assert parse(f"x = {text}") == Compare("x", "=", value)


@pytest.mark.parametrize(
    ("expr", "column"),
    [
        ("metrics.`val acc` > 0.5", "metrics.val acc"),
        ("params.`a.b` = 'dotted'", "params.a.b"),
        ("`params`.`model`.depth = 4", "params.model.depth"),
        ("metrics.Genauigkeit-ü = 0.5", "metrics.Genauigkeit-ü"),
        ("metrics.`Genauigkeit-ü` = 0.5", "metrics.Genauigkeit-ü"),
        ("params.model.depth = 4", "params.model.depth"),
        ("`and` = 1", "and"),  # backticks make a keyword a name
        ("`a``b` = 1", "a`b"),  # a doubled backtick is one backtick
        ("精度 = 1", "精度"),
    ],
)
def test_column_names(expr: str, column: str) -> None:
    assert columns(parse(expr)) == {column}


def test_backticked_names_evaluate() -> None:
    assert matches("metrics.`val acc` > 0.5")
    assert matches("params.`a.b` = 'dotted'")
    assert matches("metrics.Genauigkeit-ü = 0.5")


def test_columns_of_a_compound_expression() -> None:
    expr = parse(
        "(metrics.acc > 0.9 or not tags.team like 'v%') and params.lr in (1, 2)"
        " and datasets.train is not null and metrics.acc < 1"
    )
    assert columns(expr) == {"metrics.acc", "tags.team", "params.lr", "datasets.train"}


def test_keywords_are_case_insensitive_and_spacing_is_free() -> None:
    assert matches("status IN('finished')AND(params.epochs>=10)Or missing Is Null")
    assert matches("  status='finished'  ")
    assert matches("status\n=\t'finished'")


def test_predicate_is_reusable_across_rows() -> None:
    pred = compile_where("metrics.acc >= 0.9 and status = 'finished'")
    rows = [{"metrics.acc": a / 10, "status": "finished"} for a in range(11)]
    assert [r["metrics.acc"] for r in rows if pred(r)] == [0.9, 1.0]


@pytest.mark.parametrize(
    ("text", "column", "expected"),
    [
        ("", 1, "expected an expression, got nothing"),
        ("   ", 4, "expected an expression, got nothing"),
        ("name = 'abc", 8, "expected the closing ' of this string"),
        ('name = "abc\\"', 8, 'expected the closing " of this string'),
        ("acc ~ 1", 5, "expected an operator"),
        ("acc => 1", 5, "expected an operator, not the unknown '=>'"),
        ("acc === 1", 5, "expected an operator, not the unknown '==='"),
        ("acc >", 6, "expected a value"),
        ("acc > and b = 1", 7, "expected a value; quote strings, as in 'and'"),
        ("status = finished", 10, "expected a value; quote strings, as in 'finished'"),
        ("status = null", 10, "expected a value; test for a missing column with 'is null'"),
        ("(acc > 1", 9, "expected ')' to close the '(' at column 1"),
        ("x = 1 and ((acc > 1)", 21, "expected ')' to close the '(' at column 11"),
        ("acc > 1)", 8, "unbalanced ')'"),
        ("acc > 1 foo", 9, "expected 'and', 'or' or the end of the expression"),
        ("acc > 1 and", 12, "expected a column name"),
        ("= 1", 1, "expected a column name"),
        ("()", 2, "expected a column name"),
        ("acc in 1", 8, "expected '(' and a list of values after 'in'"),
        ("acc in ()", 9, "expected a value"),
        ("acc in (1, 2", 13, "expected ',' or ')' in the list of values"),
        ("acc in (1 2)", 11, "expected ',' or ')' in the list of values"),
        ("acc like 3", 10, "expected a quoted pattern after 'like'"),
        ("acc is 3", 8, "expected 'null' or 'not null' after 'is'"),
        ("acc not = 1", 9, "expected 'in', 'like' or 'ilike' after 'not'"),
        ("acc not is null", 9, "expected 'in', 'like' or 'ilike' after 'not'"),
        ("params. = 1", 8, "expected a name after '.'"),
        ("metrics.`val acc > 1", 9, "expected the closing ` of this quoted name"),
        ("acc = 1.2.3", 7, "expected a value"),
    ],
)
def test_errors_point_at_the_column(text: str, column: int, expected: str) -> None:
    with pytest.raises(MlmError) as info:
        parse(text)
    first_line = str(info.value).splitlines()[0]
    assert first_line.startswith(f"bad --where expression at column {column}: {expected}")


def test_error_message_shows_a_caret() -> None:
    with pytest.raises(MlmError) as info:
        compile_where("acc\t=> 1")
    assert str(info.value) == (
        "bad --where expression at column 5: expected an operator, not the unknown '=>'\n"
        "acc => 1\n"
        "    ^"
    )
    assert info.value.code == 1


def test_error_caret_at_the_end() -> None:
    with pytest.raises(MlmError) as info:
        parse("acc >")
    assert str(info.value).splitlines()[1:] == ["acc >", "     ^"]


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("__import__('os')", 11),
        ("__import__('os').system('rm -rf /')", 11),
        ("exec('1')", 5),
        ("acc = __import__('os')", 7),
        ("lambda: 1", 7),
        ("acc > 1; import os", 8),
        ("[x for x in ()]", 1),
        ("acc.__class__ = 1 or __builtins__", 34),
    ],
)
def test_python_code_is_a_parse_error(text: str, column: int) -> None:
    with pytest.raises(MlmError, match=f"^bad --where expression at column {column}: "):
        parse(text)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(MlmError, match="nested"):
        parse("(" * 500 + "a = 1" + ")" * 500)
    with pytest.raises(MlmError, match="nested"):
        parse("not " * 500 + "a = 1")
    assert matches("(" * 50 + "acc = 1" + ")" * 50)


def test_long_chains_do_not_recurse() -> None:
    expr = " or ".join(f"params.epochs = {i}" for i in range(5000))
    assert matches(expr)
    assert not matches(expr, {"params.epochs": -1})
