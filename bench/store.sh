#!/usr/bin/env bash
# The shared store's cost, memory store against Redis, one instance, one run each (wrk, 64
# connections, 1 thread): admitted visitors' requests (a valid cookie), joins (no cookie, a
# full room: every request takes a ticket) and status polls of a queued visitor (answered or
# told to wait: one store call each). Prints requests/s and, for Redis, the commands per
# request from INFO commandstats. Needs redis-server and wrk; run from the repository root
# after `cargo build --release`.
#   bench/store.sh [seconds per run, default 5]
set -euo pipefail
secs=${1:-5}
bin=./target/release/anteroom
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
redis-server --port 0 --unixsocket "$work/redis.sock" --save "" --appendonly no \
  --dir "$work" >/dev/null &
for _ in $(seq 50); do [ -S "$work/redis.sock" ] && break; sleep 0.1; done
export ANTEROOM_BENCH_SECRET=bench-secret-of-at-least-32-bytes-long

config() { # $1 store table, $2 active_users, $3 http port
  cat <<TOML
tick = "1s"
[listen]
http = "127.0.0.1:$3"
[demo]
listen = "127.0.0.1:$(( $3 + 1 ))"
[log]
access = false
[state]
dir = "$work/state-$3"
[token]
secret_env = "ANTEROOM_BENCH_SECRET"
$1
[[room]]
name = "bench"
hosts = ["bench.local"]
origin = "http://127.0.0.1:$(( $3 + 1 ))"
active_users = $2
session_ttl = "10m"
abandon_after = "10m"
TOML
}

rps() { # requests/s, and how many answers were not 2xx or 3xx
  wrk -t1 -c64 -d"${secs}s" "$@" \
    | awk '/Requests\/sec/ {r=int($2)} /Non-2xx/ {bad=$5} END {print r, bad+0}'
}

run() { # $1 name, $2 store table, $3 port
  local port=$3 base="http://127.0.0.1:$3"
  config "$2" 1 "$port" > "$work/$1-admit.toml"
  "$bin" run --config "$work/$1-admit.toml" >/dev/null 2>&1 & local pid=$!
  # Ready when it answers (the status endpoint takes no place).
  for _ in $(seq 50); do curl -s -o /dev/null "$base/__anteroom/status" -H "Host: bench.local" && break; sleep 0.1; done
  local cookie
  cookie=$(curl -s -D - -o /dev/null -H 'Host: bench.local' -H 'Accept: application/json' "$base/" \
    | awk -F': ' 'tolower($1)=="set-cookie" {split($2, c, ";"); print c[1]}')
  local token=${cookie#*=}
  local admitted refused joins polls
  [ -n "$cookie" ] || { echo "no session cookie" >&2; exit 1; }
  calls_reset
  read -r admitted refused < <(rps -H 'Host: bench.local' -H "Cookie: $cookie" \
    -H 'Accept: application/json' "$base/")
  [ "$refused" = 0 ] || { echo "$1: $refused admitted requests were not let in" >&2; exit 1; }
  local per_admitted; per_admitted=$(calls_per "$admitted")
  calls_reset
  read -r joins _ < <(rps -H 'Host: bench.local' -H 'Accept: application/json' "$base/")
  local per_join; per_join=$(calls_per "$joins")
  calls_reset
  read -r polls _ < <(rps -H 'Host: bench.local' -H 'Accept: application/json' \
    -H "Anteroom-Token: $token" "$base/__anteroom/status")
  local per_poll; per_poll=$(calls_per "$polls")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  printf '%-7s admitted %7s rps   joins %7s rps   status polls %7s rps' "$1" "$admitted" "$joins" "$polls"
  if [ "$1" = redis ]; then
    printf '   (script calls per request: admitted %s, join %s, poll %s)' \
      "$per_admitted" "$per_join" "$per_poll"
  fi
  echo
}

# Redis's count of script calls (FCALL, EVALSHA, EVAL) since the last reset; reset.
calls() {
  redis-cli -s "$work/redis.sock" info commandstats | tr -d '\r' \
    | awk -F'[=,]' '/cmdstat_evalsha|cmdstat_eval:|cmdstat_fcall:/ {n+=$2} END {print n+0}'
}
calls_reset() { redis-cli -s "$work/redis.sock" config resetstat >/dev/null; }
# Script calls per request of a run at $1 requests/s (the tick's few calls included).
calls_per() { awk -v c="$(calls)" -v n="$1" -v s="$secs" 'BEGIN {printf "%.3f", c / (n * s)}'; }

run memory "" 9200
run redis "[store]
kind = \"redis\"
url = \"redis+unix://$work/redis.sock\"" 9300
