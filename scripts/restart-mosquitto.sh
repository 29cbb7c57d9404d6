#!/usr/bin/env bash
# Restarts a mosquitto broker: stops the one whose PID is in PID_FILE (if it still runs),
# starts `mosquitto -c CONF` in the background, records its PID, and returns once it
# listens on 127.0.0.1:PORT. A --broker-reload-cmd for a broker that systemd does not run:
#
#   provisioner serve --mosquitto-export broker --mosquitto-port 8883 \
#     --broker-reload-cmd "bash scripts/restart-mosquitto.sh broker/mosquitto.conf broker/mosquitto.pid 8883 broker/mosquitto.log"
#
# (mosquitto does not reliably reload a changed CRL on SIGHUP, so it is restarted.)
# Usage: restart-mosquitto.sh CONF PID_FILE PORT [LOG]
set -euo pipefail
conf=$1 pid_file=$2 port=$3 log=${4:-/dev/null}

if [[ -s $pid_file ]]; then
  old=$(<"$pid_file")
  # Only a mosquitto: the PID may have been reused since it was recorded.
  if [[ $(cat "/proc/$old/comm" 2>/dev/null) == mosquitto ]] && kill "$old" 2>/dev/null; then
    for _ in $(seq 500); do # up to 10 s; a zombie (nobody reaps it here) counts as gone
      [[ -e /proc/$old ]] || break
      [[ $(awk '/^State:/ {print $2}' "/proc/$old/status" 2>/dev/null) != Z ]] || break
      sleep 0.02
    done
  fi
fi

mosquitto -c "$conf" >>"$log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$pid_file"
for _ in $(seq 500); do # up to 10 s
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "mosquitto exited at start (its log: $log)" >&2
    exit 1
  fi
  sleep 0.02
done
echo "mosquitto did not listen on 127.0.0.1:$port within 10 s (its log: $log)" >&2
exit 1
