#!/usr/bin/env bash
# What a broker restart (serve's --broker-reload-cmd, here scripts/restart-mosquitto.sh)
# costs connected devices, measured with a real mosquitto on 127.0.0.1:
#   - how long the restart command takes (stop, start, listening again);
#   - how long a connected subscriber (mosquitto_sub with a device's certificate, which
#     reconnects by itself) is without a connection: from the restart's start to its
#     next CONNACK;
#   - what one-shot `provisioner device connect` runs see meanwhile (they do not retry).
# Usage: bash scripts/measure-broker-restart.sh [RESTARTS]   (default 10)
# Needs target/release/provisioner (or PROVISIONER_BIN), mosquitto and mosquitto-clients.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
P=${PROVISIONER_BIN:-$here/../target/release/provisioner}
restarts=${1:-10}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
broker=$work/broker
mkdir -p "$broker"
restart=(bash "$here/restart-mosquitto.sh" "$broker/mosquitto.conf" "$broker/mosquitto.pid" "$port" "$broker/mosquitto.log")

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -s $broker/mosquitto.pid ]] && kill "$(<"$broker/mosquitto.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$P" serve --data-dir "$work/data" --listen 127.0.0.1:0 --mosquitto-export "$broker" \
  --mosquitto-port "$port" --broker-reload-cmd "${restart[*]}" >"$work/serve.out" 2>"$work/serve.log" &
pids+=($!)
for _ in $(seq 300); do grep -q '^listening on' "$work/serve.out" 2>/dev/null && break; sleep 0.05; done
url=$(sed -n 's/^listening on //p' "$work/serve.out" | head -1)
for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done

"$P" device fleet --count 1 --out "$work/fleet" >/dev/null
"$P" import "$work/fleet/manifest.csv" --data-dir "$work/data" >/dev/null 2>&1
id=$(sed -n 2p "$work/fleet/manifest.csv" | cut -d, -f1)
"$P" device provision --url "$url" --key "$work/fleet/$id.key.pem" --device-id "$id" --out "$work/device" >/dev/null
sleep 2 # the service's first look (CRLs, export, restart) is over

# A subscriber that stays connected; every line it prints is stamped with the time.
stdbuf -oL mosquitto_sub -h 127.0.0.1 -p "$port" -i "$id-sub" -t "dt/$id/#" -d -k 5 \
  --cafile "$work/device/$id.chain.pem" --cert "$work/device/$id.cert.pem" --key "$work/device/$id.key.pem" 2>&1 |
  while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done >"$work/sub.log" &
pids+=($!)
for _ in $(seq 200); do grep -q CONNACK "$work/sub.log" 2>/dev/null && break; sleep 0.05; done
grep -q CONNACK "$work/sub.log" || { echo "the subscriber did not connect:"; cat "$work/sub.log"; exit 1; }

# One-shot device connections, back to back, through every restart.
(
  while :; do
    started=$EPOCHREALTIME
    if out=$("$P" device connect --mqtt "127.0.0.1:$port" --dir "$work/device" --device-id "$id" --timeout 3 2>/dev/null); then
      echo "$started ok"
    else
      echo "$started $(sed -n 's/.*"error": *"\([a-z_]*\)".*/\1/p' <<<"$out" | head -1)"
    fi
  done >"$work/connect.log"
) &
pids+=($!)
sleep 1

echo "restart  command_ms  subscriber_offline_ms"
for i in $(seq "$restarts"); do
  t0=$EPOCHREALTIME
  "${restart[@]}"
  t1=$EPOCHREALTIME
  back=""
  for _ in $(seq 600); do
    back=$(awk -v t0="$t0" '$1 > t0 && /CONNACK/ {print $1; exit}' "$work/sub.log")
    [[ -n $back ]] && break
    sleep 0.05
  done
  [[ -n $back ]] || { echo "the subscriber did not come back within 30 s"; exit 1; }
  awk -v i="$i" -v t0="$t0" -v t1="$t1" -v back="$back" \
    'BEGIN { printf "%7d  %10.0f  %21.0f\n", i, (t1 - t0) * 1000, (back - t0) * 1000 }'
  sleep 2
done
echo "one-shot device connect runs meanwhile: $(wc -l <"$work/connect.log") (by outcome:" \
  "$(awk '{print $2}' "$work/connect.log" | sort | uniq -c | awk '{printf "%s %s, ", $2, $1}')no retries)"
