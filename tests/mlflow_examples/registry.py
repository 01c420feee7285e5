"""Run by the real MLflow for the importer's tests: runs on named commits, registered models with
stages and aliases, an MLflow 3 logged model, and an experiment whose artifacts live on S3.

The commits come from the environment (C1, C2: commits of the project; the last runs take
MLflow's own `mlflow.source.git.commit`, HEAD). S3 is moto's server (MLFLOW_S3_ENDPOINT_URL)
and the bucket BUCKET. STORES is `kind=tracking-uri,...`: one process writes each store in
turn (MLflow's start is slow). Prints the run ids by store and name as JSON.
"""

import json
import os
import tempfile

import mlflow
from mlflow import MlflowClient


def model_folder(text):
    folder = tempfile.mkdtemp()
    with open(os.path.join(folder, "model.pkl"), "w") as fh:
        fh.write(text)
    with open(os.path.join(folder, "MLmodel"), "w") as fh:
        fh.write("flavors: {}\n")
    return folder


def write_store(kind):
    client = MlflowClient()
    ids = {}
    mlflow.set_experiment("registry")
    for name, commit, auc in (("r1", "C1", 0.8), ("r2", "C2", 0.9), ("r3", "C2", 0.85)):
        with mlflow.start_run(run_name=name) as run:
            mlflow.set_tag("mlflow.source.git.commit", os.environ[commit])
            mlflow.log_metric("auc", auc)
            mlflow.log_artifacts(model_folder(f"weights of {name}"), "model")
            ids[name] = run.info.run_id

    exp = mlflow.create_experiment(
        "remote", artifact_location=f"s3://{os.environ['BUCKET']}/{kind}/remote"
    )
    with mlflow.start_run(run_name="r5", experiment_id=exp) as run:
        mlflow.log_metric("auc", 0.95)
        mlflow.log_text("on s3", "notes/readme.txt")
        mlflow.log_artifacts(model_folder("weights of r5"), "model")
        ids["r5"] = run.info.run_id

    client.create_registered_model("churn", description="churn classifier")
    for name in ("r1", "r2", "r3", "r5"):
        client.create_model_version("churn", f"runs:/{ids[name]}/model", run_id=ids[name])
    client.transition_model_version_stage("churn", "1", "Production")
    client.transition_model_version_stage("churn", "2", "Staging")
    client.set_registered_model_alias("churn", "champion", "2")
    client.set_registered_model_alias("churn", "challenger", "4")

    # MLflow 3's way: a logged model (its own artifact folder), registered under a name with a space
    mlflow.set_experiment("registry")
    with mlflow.start_run(run_name="r4") as run:
        mlflow.set_tag("mlflow.source.git.commit", os.environ["C1"])
        mlflow.pyfunc.log_model(
            name="model",
            python_model=mlflow.pyfunc.PythonModel(),
            registered_model_name="sk model",
        )
        ids["r4"] = run.info.run_id
    client.transition_model_version_stage("sk model", "1", "Archived")

    return ids


out = {}
for item in os.environ["STORES"].split(","):
    kind, uri = item.split("=", 1)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    out[kind] = write_store(kind)
print(json.dumps(out))
