#!/usr/bin/env bash
# Starts and stops moto's server (a stand-in for AWS services) on 127.0.0.1.
#
#   eval "$(bash scripts/moto.sh start)"   # prints the environment the AWS SDK needs
#   bash scripts/moto.sh stop
#
# start picks a free port (or $MOTO_PORT), starts $PROVISIONER_CACHE/venv/bin/moto_server
# (installed by scripts/install-tools.sh), waits until it answers, records its PID in
# $MOTO_DIR/moto.pid (log: $MOTO_DIR/moto.log; default MOTO_DIR=${TMPDIR:-/tmp}/provisioner-moto)
# and prints `export` lines: AWS_ENDPOINT_URL, dummy credentials, AWS_REGION=us-east-1,
# MOTO_PID. stop ends the process recorded in the PID file, and only if it is moto.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh
source "$SCRIPT_DIR/env.sh"

VENV="$PROVISIONER_CACHE/venv"
MOTO_SERVER="$VENV/bin/moto_server"
MOTO_DIR=${MOTO_DIR:-${TMPDIR:-/tmp}/provisioner-moto}
PID_FILE="$MOTO_DIR/moto.pid"
LOG_FILE="$MOTO_DIR/moto.log"

die() { echo "moto.sh: $*" >&2; exit 1; }

free_port() {
  "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# answers PORT -> succeeds once moto's API answers on PORT
answers() {
  "$VENV/bin/python" - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/data.json", timeout=1).read()
PY
}

# is_moto PID -> succeeds if PID is a running moto server
is_moto() {
  [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q moto_server
}

start() {
  [[ -x $MOTO_SERVER ]] || die "$MOTO_SERVER not found: run bash scripts/install-tools.sh"
  mkdir -p "$MOTO_DIR"
  if [[ -f $PID_FILE ]] && is_moto "$(cat "$PID_FILE")"; then
    die "moto already runs as PID $(cat "$PID_FILE") (PID file $PID_FILE): stop it first, or set MOTO_DIR"
  fi
  local attempt port pid
  # The port is free when picked; another process may take it before moto binds it,
  # so a moto that exits at once is retried on another port.
  for attempt in 1 2 3; do
    port=${MOTO_PORT:-$(free_port)}
    # moto_server.py: moto's server with IoT certificate ids as AWS computes them.
    "$VENV/bin/python" "$SCRIPT_DIR/moto_server.py" -H 127.0.0.1 -p "$port" >"$LOG_FILE" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$PID_FILE"
    for _ in $(seq 1 100); do
      if answers "$port"; then
        echo "moto.sh: moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)') on 127.0.0.1:$port, PID $pid (log $LOG_FILE)" >&2
        cat <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_SESSION_TOKEN=testing
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export MOTO_PID=$pid
EOF
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    stop_pid "$pid"
    rm -f "$PID_FILE"
    echo "moto.sh: moto did not answer on port $port (attempt $attempt); log:" >&2
    tail -n 5 "$LOG_FILE" >&2 || true
    [[ -z ${MOTO_PORT:-} ]] || break
  done
  die "could not start moto"
}

# stop_pid PID -> ends PID (TERM, then KILL after 5 s) if it is moto
stop_pid() {
  local pid=$1
  is_moto "$pid" || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    is_moto "$pid" || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

stop() {
  [[ -f $PID_FILE ]] || { echo "moto.sh: no PID file $PID_FILE: nothing to stop" >&2; return 0; }
  local pid
  pid=$(cat "$PID_FILE")
  if is_moto "$pid"; then
    stop_pid "$pid"
    echo "moto.sh: stopped moto (PID $pid)" >&2
  else
    echo "moto.sh: PID $pid is not a running moto: nothing to stop" >&2
  fi
  rm -f "$PID_FILE"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) die "usage: bash scripts/moto.sh start|stop" ;;
esac
