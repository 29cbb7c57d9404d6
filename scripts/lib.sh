# shellcheck shell=bash
# Small helpers shared by the project's scripts. Source it.

# step NAME CMD...
#   Prints "==> NAME", runs CMD, then "<== NAME ok in Ns" or "<== NAME FAILED in Ns".
#   Returns CMD's exit code. Works under `set -e`: the caller stops on a failed step
#   unless it writes `step ... || true` or tests it in an `if`.
#   Note: if CMD is a shell function, bash disables errexit inside it (it runs in an
#   `if` context), so such functions should chain with && or check their own errors.
step() {
  local name=$1; shift
  local start=$EPOCHREALTIME rc=0
  echo "==> $name"
  if "$@"; then rc=0; else rc=$?; fi
  local secs
  secs=$(_elapsed_since "$start")
  if (( rc == 0 )); then
    echo "<== $name ok in ${secs}s"
  else
    echo "<== $name FAILED in ${secs}s (exit $rc)"
  fi
  return "$rc"
}

# _elapsed_since START_EPOCHREALTIME -> seconds with one decimal, e.g. 12.3
_elapsed_since() {
  local now=$EPOCHREALTIME
  # EPOCHREALTIME is "seconds.micros"; do integer arithmetic in microseconds.
  local s=${1%[.,]*} us=${1#*[.,]} ns=${now%[.,]*} nus=${now#*[.,]}
  local d=$(( (ns - s) * 1000000 + (10#$nus - 10#$us) ))
  printf '%d.%d' $(( d / 1000000 )) $(( (d % 1000000) / 100000 ))
}
