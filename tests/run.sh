#!/usr/bin/env bash
# The whole test run on a fresh machine (what CI runs): the Debian packages that tests drive for
# real, the peer tools in venvs of their own (never our dependencies), the test extras, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

debian=()
command -v git-lfs >/dev/null || debian+=(git-lfs)
command -v chromium >/dev/null || debian+=(chromium)   # the ui's browser tests (Playwright)
command -v java >/dev/null || debian+=(default-jre-headless)   # --engine spark (local mode)
if [ ${#debian[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: tests need ${debian[*]}: sudo apt-get install -y ${debian[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debian[@]}" >/dev/null
fi

# GTO, DVC and MLflow for the differential tests, from the steering repo's shared/ beside us.
peers=../shared/peers/install.sh
root=${PEERS_DIR:-/tmp/gitmlm-peers}
if [ -f "$peers" ]; then
  bash "$peers" gto dvc mlflow
else  # a clone on its own: the same venvs, made here (skips what is installed)
  for spec in gto "dvc[s3]" mlflow; do
    tool=${spec%%[*}
    if [ ! -x "$root/$tool/bin/python" ]; then
      python3 -m venv "$root/$tool"
      "$root/$tool/bin/pip" install -q "$spec"
    fi
  done
fi

# MLflow logs artifacts to S3 (moto's server, in tests/imports_mlflow_registry_test.py) with boto3.
"$root/mlflow/bin/python" -c "import boto3" 2>/dev/null || "$root/mlflow/bin/pip" install -q boto3

# torch's CPU build before the deep-learning autolog extra: the tests train tiny models on the
# CPU, and pip would take a CUDA build of several GB for a plain `torch`. The +cpu wheel is the
# one pip finds on these machines; elsewhere, whatever `torch` gives.
if ! python -c 'import torch' 2>/dev/null; then
  python -m pip install -q 'torch==2.13.0+cpu' 2>/dev/null || python -m pip install -q torch
fi
python -m pip install -q -e '.[test,autolog-dl]'
python -m pytest -n auto -q "$@"
