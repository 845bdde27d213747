#!/usr/bin/env bash
# Run one function locally against moto: start moto on 127.0.0.1, create the bucket (with
# events/logs uploaded), trail, table and topic (scripts/local_aws.py), run the function
# under `cargo lambda watch`, invoke it with an events/ sample, print the stored findings,
# clean up.
#
#   scripts/invoke.sh log-processor  [events/log-processor-s3-put.json]
#   scripts/invoke.sh event-handler  [events/event-handler-api-call.json]
#   scripts/invoke.sh config-auditor [events/config-auditor-scheduled.json]
#
# Needs .venv with moto[server]==5.1.22 (`make venv`); installs cargo-lambda into it when
# it is not on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
FUNCTION=${1:?usage: scripts/invoke.sh FUNCTION [EVENT]}
case "$FUNCTION" in
  log-processor) DEFAULT_EVENT=events/log-processor-s3-put.json; WARMUP=events/log-processor-test-event.json ;;
  event-handler) DEFAULT_EVENT=events/event-handler-api-call.json; WARMUP=events/event-handler-unknown.json ;;
  config-auditor) DEFAULT_EVENT=events/config-auditor-scheduled.json; WARMUP=$DEFAULT_EVENT ;;
  *) echo "unknown function $FUNCTION (log-processor, event-handler, config-auditor)" >&2; exit 2 ;;
esac
EVENT=${2:-$DEFAULT_EVENT}
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
[ -x "$VENV/bin/moto_server" ] || { echo "moto not found in $VENV (make venv)" >&2; exit 1; }
CARGO_LAMBDA=${CARGO_LAMBDA:-$(command -v cargo-lambda || true)}
if [ -z "$CARGO_LAMBDA" ]; then
  [ -x "$VENV/bin/cargo-lambda" ] || "$VENV/bin/pip" install --quiet 'cargo-lambda==1.9.2'
  CARGO_LAMBDA=$VENV/bin/cargo-lambda
fi

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOTO_PORT=$(free_port)
INVOKE_PORT=$(free_port)
ENDPOINT="http://127.0.0.1:$MOTO_PORT"
LOG_DIR=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$LOG_DIR"
}
trap cleanup EXIT

"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$LOG_DIR/moto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 150); do
  "$PY" -c "import urllib.request,sys; urllib.request.urlopen('$ENDPOINT/moto-api/')" 2>/dev/null && break
  sleep 0.1
done

eval "$("$PY" scripts/local_aws.py setup "$ENDPOINT" | sed 's/^/export /')"
echo "moto on $ENDPOINT; table $FINDINGS_TABLE; topic $ALERTS_TOPIC_ARN; trail $TRAIL_NAME"

# build first: `watch` builds on the first request, which would otherwise wait minutes
# (the deadline cargo lambda sends is its timeout, 600000 ms, not an epoch time: the
# functions log that and run without a deadline, see handler::lambda_deadline)
cargo build -p "$FUNCTION"

# `watch` runs the function with these variables; AWS_ENDPOINT_URL points every SDK client at moto
"$CARGO_LAMBDA" lambda watch -p "$FUNCTION" --invoke-address 127.0.0.1 --invoke-port "$INVOKE_PORT" \
  --env-var "FINDINGS_TABLE=$FINDINGS_TABLE,ALERTS_TOPIC_ARN=$ALERTS_TOPIC_ARN,AWS_ENDPOINT_URL=$ENDPOINT" \
  --env-var "TRAIL_NAME=$TRAIL_NAME,TRAIL_BUCKET=$TRAIL_BUCKET" \
  --env-var "AWS_REGION=us-east-1,AWS_ACCESS_KEY_ID=testing,AWS_SECRET_ACCESS_KEY=testing,RUST_LOG=info" \
  >"$LOG_DIR/watch.log" 2>&1 &
PIDS+=($!)

started=$(date +%s)
invoke() {
  "$CARGO_LAMBDA" lambda invoke "$FUNCTION" --invoke-address 127.0.0.1 --invoke-port "$INVOKE_PORT" \
    --data-file "$1" >"$LOG_DIR/invoke.out" 2>"$LOG_DIR/invoke.err"
}
# warm-up with a sample that changes nothing: `watch` starts (and may still compile) the
# function on its first request; retry until watch listens and the function answers
for _ in $(seq 120); do
  invoke "$WARMUP" && break
  sleep 5
done
echo "function warm after $(( $(date +%s) - started )) s"
invoke "$EVENT" || true
echo "invoke answered after $(( $(date +%s) - started )) s:"
cat "$LOG_DIR/invoke.out" "$LOG_DIR/invoke.err"
echo
grep -E "cold start ready|object processed" "$LOG_DIR/watch.log" || tail -20 "$LOG_DIR/watch.log"
echo
"$PY" scripts/local_aws.py findings "$ENDPOINT"
