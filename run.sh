#!/usr/bin/env bash
# One entry point for people and CI.
#   ./run.sh demo     install what is needed, start API + worker, run the demo GRPO job and show it learn
#   ./run.sh test     install what is needed (with test extras) and run the whole test suite
#   ./run.sh lint     install the dev extras; ruff check, ruff format --check, mypy --strict (CI runs it)
#   ./run.sh api | worker | service-worker | rewards-worker | inference   run one service process in the foreground (after an install)
#   ./run.sh admin ...  grpo-admin (API keys, tenant limits); ./run.sh grpo ...  the client CLI;
#   ./run.sh train ...  grpo-train (a spec in-process): the venv's commands without activating it
# Environment: GRPO_VENV (default .venv), TORCH_SPEC (default torch==2.13.0: the CPU wheel; on a GPU machine
# install your CUDA build of torch into the venv first and it is kept).
set -euo pipefail
cd "$(dirname "$0")"

VENV=${GRPO_VENV:-.venv}
PY="$VENV/bin/python"

install() {
  local extras=$1
  if [ ! -x "$PY" ]; then
    python3 -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
    python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip
  fi
  # torch first, pinned: an unpinned torch would pull a multi-GB CUDA build on a CPU machine.
  "$PY" -c 'import torch' 2>/dev/null || "$PY" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
  # Reinstall the project only when its dependency list changed.
  local stamp="$VENV/.grpo-installed-$extras"
  local want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$PY" -m pip install -q -e ".[$extras]"
    echo "$want" > "$stamp"
  fi
}

command=${1:-}
shift || true
case "$command" in
  demo)
    install test
    exec "$PY" -m scripts.demo "$@"
    ;;
  test)
    install test
    exec "$PY" -m pytest "$@"
    ;;
  lint)
    install dev
    failed=0  # run all three, so one run reports every kind of finding
    "$VENV/bin/ruff" check . || failed=1
    "$VENV/bin/ruff" format --check . || failed=1
    "$VENV/bin/mypy" || failed=1  # strict, on [tool.mypy] files in pyproject.toml
    exit $failed
    ;;
  api)
    install test
    "$PY" -m app.cli migrate
    exec "$PY" -m uvicorn app.main:app --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" --log-config app/core/uvicorn_log.json "$@"
    ;;
  worker)
    install test
    exec "$PY" -m celery -A workers.celery_app worker --loglevel INFO --pool prefork --concurrency 1 --queues grpo "$@"
    ;;
  admin)
    install test
    # The database must exist before a key can be stored in it (./run.sh api migrates too; a no-op when current).
    case "${1:-}" in ""|-h|--help|migrate) ;; *) "$PY" -m app.cli migrate ;; esac
    exec "$PY" -m app.cli "$@"
    ;;
  grpo)
    install test
    exec "$PY" -m grpo_client "$@"
    ;;
  train)
    install test
    exec "$PY" -m workers.cli "$@"
    ;;
  service-worker)
    install test
    exec "$PY" -m celery -A workers.celery_app worker --loglevel INFO --pool prefork --concurrency 1 --queues service "$@"
    ;;
  rewards-worker)
    install test
    exec "$PY" -m celery -A workers.reward_app worker --loglevel INFO --pool threads --concurrency 2 --queues rewards "$@"
    ;;
  inference)
    install test
    exec "$PY" -m workers.inference --host "${HOST:-127.0.0.1}" --port "${INFERENCE_PORT:-8100}" "$@"
    ;;
  *)
    sed -n '2,10p' "$0"
    exit 2
    ;;
esac
