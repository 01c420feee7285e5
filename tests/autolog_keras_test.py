"""Keras 3 autologging against the real library on the torch backend, a two-layer MLP on CPU:
optimizer and fit settings as params, epoch and step series, the saved model, failed fits."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported: no tensorflow here

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest

import gitmlm
from gitmlm.autolog import common
from gitmlm.autolog import keras as keras_autolog
from gitmlm.core.git import Repo
from gitmlm.tracking import logged

# Keras 3 on numpy 2 warns at every step that __array__ takes no `copy`: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def own_runs_end() -> Iterator[None]:
    yield
    common.end_own()


def mlp() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse", metrics=["mae"])
    return model


def data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
    return x, x[:, :1] * 2


def test_callback_records_params_series_and_model(repo: Path) -> None:
    x, y = data()
    model = mlp()
    with gitmlm.start_run(name="mlp") as run:
        model.fit(
            x,
            y,
            epochs=2,
            batch_size=8,
            validation_split=0.2,
            verbose=0,
            callbacks=[keras_autolog.GitmlmCallback(log_every_n_steps=1)],
        )
    got = gitmlm.get_run(run.id)
    assert got.status == "finished"
    assert got.params["opt_name"] == "adam" and got.params["opt_weight_decay"] == "None"
    assert got.params["opt_learning_rate"] == pytest.approx(0.01)
    assert got.params["epochs"] == 2 and got.params["steps"] == 4
    assert got.steps["loss"]["step"] == [0, 1] and got.steps["val_mae"]["step"] == [0, 1]
    assert got.steps["loss_step"]["step"] == list(range(1, 9))  # 32 rows in batches of 8
    kept = logged.kept_path(Repo.open(repo), run.id, keras_autolog.MODEL)
    again = keras.saving.load_model(kept)
    assert np.allclose(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_autolog_records_fit_args_and_fails_the_run_it_opened(repo: Path) -> None:
    x, y = data()
    keras_autolog.autolog(log_models=False)
    try:
        mlp().fit(x, y, epochs=1, batch_size=16, verbose=0)
        with pytest.raises(ValueError):
            mlp().fit(x, y[:5], epochs=1, verbose=0)  # x and y disagree: fit raises
    finally:
        keras_autolog.autolog(disable=True)
    assert "fit" not in keras.Model.__dict__
    done, failed = sorted(
        (gitmlm.get_run(r) for r in gitmlm.runs()["run_id"]), key=lambda r: r.status != "finished"
    )
    assert done.status == "finished" and done.tags["mlm.autolog"] == "keras"
    assert done.params["batch_size"] == 16 and done.params["class_weight"] == "None"
    assert "x" not in done.params and done.artifacts == {}
    assert failed.status == "failed" and failed.extra["error"]["type"] == "ValueError"


def test_autolog_waits_for_the_import_and_an_uncaught_exception_fails_the_run(
    repo: Path,
) -> None:
    """A plain script, no `start_run`. autolog() before `import keras` imports no Keras and
    turns Keras on at its import (torch may load all the same: scikit-learn's all_estimators()
    walks sklearn.externals.array_api_compat.torch). Then, autolog off, the callback alone sees
    no exception: the run it opened ends failed with the one that stopped the script."""
    (repo / "fit.py").write_text(
        "import sys\n"
        "from gitmlm.autolog import autolog\n"
        "assert 'keras' in autolog()\n"
        "assert not {'keras', 'lightning', 'transformers'} & set(sys.modules)\n"
        "import keras, numpy as np\n"
        "from gitmlm.autolog.keras import GitmlmCallback\n"
        "class Stop(keras.callbacks.Callback):\n"
        "    def on_epoch_end(self, epoch, logs=None):\n"
        "        raise KeyError('bad label')\n"
        "m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])\n"
        "m.compile(optimizer='sgd', loss='mse')\n"
        "x = np.ones((8, 2), 'float32')\n"
        "m.fit(x, x[:, :1], epochs=1, verbose=0)\n"
        "autolog(disable=True)\n"
        "m.fit(x, x[:, :1], epochs=3, verbose=0, callbacks=[GitmlmCallback(), Stop()])\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    proc = subprocess.run([sys.executable, "fit.py"], cwd=repo, capture_output=True, env=env)
    assert proc.returncode == 1 and b"KeyError" in proc.stderr, proc.stderr.decode()
    done, failed = sorted(
        (gitmlm.get_run(r) for r in gitmlm.runs()["run_id"]), key=lambda r: r.status != "finished"
    )
    assert done.status == "finished" and done.params["epochs"] == 1
    assert keras_autolog.MODEL in done.artifacts
    assert failed.status == "failed" and failed.extra["error"]["type"] == "KeyError"
    assert failed.steps["loss"]["step"] == [0]
