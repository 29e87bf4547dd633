#!/usr/bin/env bash
# A Celery cluster on 127.0.0.1 for lenslab's distributed executor (LENSLAB_EXECUTOR=celery):
# a Redis broker, one CPU worker (default queue "dagster") and one GPU worker (queue "gpu", the
# queue GPU assets are tagged with). Used by tests/orchestration/test_celery_executor.py; usable by hand:
#
#   scripts/celery_cluster.sh start RUN_DIR [PORT]   # prints the broker URL
#   LENSLAB_EXECUTOR=celery LENSLAB_CELERY_BROKER=<url> dg launch --job pipeline
#   scripts/celery_cluster.sh stop RUN_DIR
#
# Workers share this machine's DAGSTER_HOME (set it first) and this checkout's code; they are
# named cpu@<host> and gpu@<host>.
set -euo pipefail
cd "$(dirname "$0")/.."

action=${1:?usage: celery_cluster.sh start|stop RUN_DIR [PORT]}
run_dir=${2:?usage: celery_cluster.sh start|stop RUN_DIR [PORT]}
port=${3:-6379}
bin=$(cd "${VENV:-.venv}/bin" && pwd)

stop() {  # each worker runs in its own session: end the whole group (celery forks children)
  for pidfile in "$run_dir"/*.pid; do
    [[ -f $pidfile ]] || continue
    pid=$(cat "$pidfile")
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

if [[ $action == stop ]]; then stop; exit 0; fi
[[ $action == start ]] || { echo "unknown action $action" >&2; exit 2; }
: "${DAGSTER_HOME:?set DAGSTER_HOME: the workers record events in that instance}"
mkdir -p "$run_dir"
run_dir=$(cd "$run_dir" && pwd)

redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --daemonize yes \
  --pidfile "$run_dir/redis.pid" --logfile "$run_dir/redis.log" --dir "$run_dir"
broker="redis://127.0.0.1:$port/0"
for _ in $(seq 50); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
printf 'execution:\n  config:\n    broker: "%s"\n    backend: "%s"\n' "$broker" "$broker" \
  > "$run_dir/celery.yaml"

export LENSLAB_EXECUTOR=celery LENSLAB_CELERY_BROKER=$broker
export PATH="$bin:$PATH"  # dagster-celery starts `celery` from PATH
start_worker() {  # name queue
  setsid "$bin/dagster-celery" worker start -A dagster_celery.app -n "$1" \
    -y "$run_dir/celery.yaml" -q "$2" \
    -- --concurrency 1 --pool prefork > "$run_dir/$1.log" 2>&1 &
  echo $! > "$run_dir/$1.pid"
}
# create the instance's storage once, before two workers race to create it
"$bin/python" -c "import dagster; dagster.DagsterInstance.get().dispose()" 2>/dev/null
start_worker cpu dagster
start_worker gpu gpu

# ready when both workers answer a ping
for _ in $(seq 60); do
  for w in cpu gpu; do
    kill -0 "$(cat "$run_dir/$w.pid")" 2>/dev/null || { echo "celery $w worker died:" >&2
      tail -5 "$run_dir/$w.log" >&2; stop; exit 1; }
  done
  replies=$("$bin/celery" -b "$broker" inspect ping -t 1 2>/dev/null | grep -c "pong" || true)
  [[ $replies -ge 2 ]] && { echo "$broker"; exit 0; }
  sleep 1
done
echo "celery workers did not start; see $run_dir/*.log" >&2
stop
exit 1
