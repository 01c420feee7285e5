"""mlm.toml is read once, through core.config, and checked against its schema: bad input is one
clear error naming the file, never a traceback or a setting silently off."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitmlm.core import config
from gitmlm.errors import MlmError
from tests.helpers import git, mlm


def refused(repo: Path, message: str, *args: str) -> str:
    """`git mlm ARGS` exits 1 with one clear line containing `message`, no traceback."""
    proc = mlm(repo, *(args or ("data", "status")), check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr
    return proc.stderr


def test_mlm_toml_that_is_a_directory(repo: Path) -> None:
    (repo / "mlm.toml").mkdir()
    refused(repo, "mlm.toml is a directory; mlm.toml must be a TOML file")
    refused(repo, "is a directory", "models")


def test_a_byte_that_is_not_utf8(repo: Path) -> None:
    (repo / "mlm.toml").write_bytes(b'schema = 1\n[metrics]\nacc = "max" # \xff\n')
    refused(repo, "not UTF-8 text (byte 0xFF on line 3)")


def test_schema_as_a_string_says_it_must_be_the_integer_1(repo: Path) -> None:
    (repo / "mlm.toml").write_text('schema = "1"\n')
    err = refused(repo, "schema must be the integer 1")
    assert "newer" not in err
    (repo / "mlm.toml").write_text("schema = 2\n")
    refused(repo, "schema 2 is newer than this gitmlm reads (1)")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[checkpoint]\noutput = ["models/*.pkl"]\n', "unknown key 'output' in [checkpoint] (did "),
        ('[checkpoint]\noutput = ["m"]\n', "known: code, exclude, outputs, mode, max_size"),
        ('[datasets.train]\npath = "d"\nexlude = ["*.tmp"]\n', "'exlude' in [datasets.train]"),
        ('[models.churn]\npath = "m.pkl"\ndescripton = "x"\n', "'descripton' in [models.churn]"),
        ('[registry]\nstage = ["dev"]\n', "unknown key 'stage' in [registry] (did you mean stages"),
        ('[registry.gates.production]\nrequires = ["x"]\n', "'requires' in [registry.gates."),
        ('[datset.train]\npath = "d"\n', "unknown key 'datset' in the top level"),
        ("metrics = 5\n", "[metrics] must be a table, not 5"),
        ('[metrics]\nacc = "maximum"\n', '[metrics] acc must be "max" or "min"'),
        ("[registry.gates.production]\nclean_checkpoint = 1\n", "must be true or false"),
    ],
)
def test_schema_errors_name_the_section_and_the_known_keys(
    repo: Path, toml: str, message: str
) -> None:
    (repo / "mlm.toml").write_text(f"schema = 1\n{toml}")
    with pytest.raises(MlmError, match=r"mlm\.toml") as raised:
        config.load(repo)
    assert message in str(raised.value)


def test_a_typo_in_checkpoint_outputs_is_refused_by_the_commands(repo: Path) -> None:
    # `output` instead of `outputs` used to switch the outputs guard off without a word.
    (repo / "mlm.toml").write_text('schema = 1\n[checkpoint]\noutput = ["models/*.pkl"]\n')
    refused(repo, "did you mean outputs?", "run", "--", "true")
    assert git(repo, "for-each-ref", "refs/mlm", "refs/notes") == ""  # nothing written


def test_metrics_not_a_table_is_refused_at_load_not_at_a_gate(repo: Path) -> None:
    (repo / "mlm.toml").write_text("schema = 1\nmetrics = 5\n")
    refused(repo, "[metrics] must be a table", "models")


def test_the_template_and_typed_settings(repo: Path) -> None:
    assert config.parse(config.TEMPLATE)["schema"] == 1
    cfg = config.parse(
        'schema = 1\n[datasets.train]\npath = "d"\nexclude = ["*.tmp"]\n'
        '[datasets.test]\npath = "t"\n'
        '[models.churn]\npath = "m.pkl"\ndescription = "c"\n'
        '[checkpoint]\noutputs = ["m.pkl"]\nmode = "warn"\n'
        '[registry]\nstages = ["dev", "prod"]\nallowed_signers = "s"\n'
        '[registry.gates.prod]\nrequire = "metrics.acc > 0.9"\nsigned = true\n'
    )
    typed = config.settings(cfg)
    assert typed.datasets["train"] == config.Dataset("train", "d", ("*.tmp",))
    assert typed.models["churn"].description == "c"
    assert typed.checkpoint.outputs == ("m.pkl",) and typed.checkpoint.code is None
    assert typed.registry.stages == ("dev", "prod")
    assert typed.registry.gates["prod"] == config.Gates(require=("metrics.acc > 0.9",), signed=True)
