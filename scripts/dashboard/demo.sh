#!/usr/bin/env bash
# Makes docs/dashboard.svg: the Grafana dashboard's panels (examples/grafana/) from a real
# Prometheus scrape (1 s) of a runner under load, plotted by scripts/dashboard/plot.ts.
#
#   apt-get install -y prometheus        # Debian's; Grafana is not needed
#   scripts/dashboard/demo.sh [out.svg]  # about 3 minutes; RabbitMQ on localhost:5672
#
# The load, on private queue names: first the benchmark's throughput figure (`deno task bench
# --only throughput`; its runner inherits TERARIUM_TASKRUNNER_HTTP_PORT), then
# scripts/dashboard/load.ts: a runner with an allow-list (concurrency 8), fed for LOAD_SECONDS
# with 12 tasks in flight of a mix: successes with progress, exits 3, inactivity timeouts,
# tasks without output, scripts not allowed or not found, and cancels.
set -euo pipefail

cd "$(dirname "$0")/../.."
OUT=${1:-docs/dashboard.svg}
LOAD_SECONDS=${LOAD_SECONDS:-120}
PROM_PORT=${PROM_PORT:-19390}
RUNNER_PORT=${RUNNER_PORT:-19464}
TMP=$(mktemp -d)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

cat >"$TMP/prometheus.yml" <<EOF
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: taskrunner
    static_configs: [{ targets: ["127.0.0.1:$RUNNER_PORT"] }]
EOF
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$TMP/prometheus.log" 2>&1 &
PIDS+=($!)
until curl -sf "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null; do sleep 0.5; done
START=$(date +%s)

echo "bench: throughput, runner's HTTP port $RUNNER_PORT" >&2
TERARIUM_TASKRUNNER_HTTP_PORT=$RUNNER_PORT deno task bench --only throughput --peer none \
  >"$TMP/bench.log" 2>&1 || { cat "$TMP/bench.log" >&2; exit 1; }
sleep 3

echo "load: $LOAD_SECONDS s of mixed tasks" >&2
TERARIUM_TASKRUNNER_HTTP_PORT=$RUNNER_PORT TERARIUM_TASKRUNNER_ALLOWED_SCRIPTS="$PWD/tests/fixtures/*.py" \
  deno run --allow-read --allow-write --allow-run --allow-net --allow-env --allow-ffi --allow-sys \
  scripts/dashboard/load.ts "$LOAD_SECONDS" 12
sleep 2
END=$(date +%s)

deno run --allow-net --allow-read --allow-write scripts/dashboard/plot.ts \
  --prometheus "http://127.0.0.1:$PROM_PORT" --start "$START" --end "$END" --scrape-interval 1 \
  --title "taskrunner dashboard: deno task bench --only throughput, then $LOAD_SECONDS s of mixed tasks (12 in flight, concurrency 8); Prometheus scrape 1 s" \
  --out "$OUT"
deno fmt --quiet "$OUT" # as `deno fmt --check` (CI) wants it
echo "wrote $OUT" >&2
