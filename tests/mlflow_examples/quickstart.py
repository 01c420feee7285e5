"""A training script written against MLflow's documented fluent API (not gitmlm's).

The tests run it unchanged under the real MLflow and with `import gitmlm.mlflow as mlflow`
(GITMLM_AS_MLFLOW=1), and compare what it prints.
"""

import json
import os

if os.environ.get("GITMLM_AS_MLFLOW"):
    import gitmlm.mlflow as mlflow
else:
    import mlflow

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

exp = mlflow.set_experiment("quickstart")

with mlflow.start_run(run_name="sweep", description="lr sweep") as parent:
    mlflow.log_param("alpha", 0.5)
    mlflow.log_params({"l1_ratio": 0.1, "solver": None, "layers": 3})
    for step in range(3):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metrics({"rmse": 0.7, "r2": 0.3})
    mlflow.set_tag("team", "search")
    mlflow.set_tags({"stage": "dev", "mlflow.source.git.commit": "0" * 40})
    mlflow.log_dict({"a": 1, "b": [1, 2]}, "config.json")
    mlflow.log_text("hello", "notes/summary.txt")
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    mlflow.log_figure(fig, "plots/curve.png")
    mlflow.log_table(pd.DataFrame({"x": [1, 2]}), "preds.json")
    for lr in (0.1, 0.01):
        with mlflow.start_run(run_name=f"lr-{lr}", nested=True) as child:
            mlflow.log_param("lr", lr)
            mlflow.log_metric("acc", 0.9 if lr == 0.01 else 0.7)
    active_name = mlflow.active_run().info.run_name
    parent_id = parent.info.run_id

try:
    with mlflow.start_run(run_name="broken"):
        mlflow.log_metric("acc", 0.1)
        raise RuntimeError("diverged")
except RuntimeError:
    pass

mlflow.start_run(run_name="manual")
mlflow.log_metric("acc", 0.5)
mlflow.end_run()

good = mlflow.search_runs(filter_string="metrics.acc > 0.6", order_by=["metrics.acc DESC"])
children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
failed = mlflow.search_runs(filter_string="attributes.status = 'FAILED'")
by_param = mlflow.search_runs(filter_string="params.lr = '0.01'")
liked = mlflow.search_runs(filter_string="tags.mlflow.runName LIKE 'lr-%'")
run = mlflow.get_run(parent_id)


def clean(d):
    return {k: v for k, v in d.items() if not k.startswith("mlflow.")}


print(
    json.dumps(
        {
            "experiment": exp.name,
            "active_name": active_name,
            "after": mlflow.active_run() is None,
            "last": mlflow.last_active_run().info.run_name,
            "good": list(good["tags.mlflow.runName"]),
            "good_acc": list(good["metrics.acc"]),
            "good_lr": list(good["params.lr"]),
            "children": sorted(children["tags.mlflow.runName"]),
            "failed": list(failed["tags.mlflow.runName"]),
            "failed_status": list(failed["status"]),
            "by_param": list(by_param["tags.mlflow.runName"]),
            "liked": sorted(liked["tags.mlflow.runName"]),
            "columns": sorted(c for c in good.columns if not c.startswith("tags.mlflow.")),
            "params": run.data.params,
            "metrics": {k: round(v, 6) for k, v in run.data.metrics.items()},
            "tags": clean(run.data.tags),
            "note": run.data.tags.get("mlflow.note.content"),
            "status": run.info.status,
            "times": run.info.end_time >= run.info.start_time > 0,
            "total": len(mlflow.search_runs()),
        },
        sort_keys=True,
    )
)
