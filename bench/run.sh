#!/usr/bin/env bash
# bench/run.sh - every performance target of anteroom in one command, printed as one table.
#
#   bench/run.sh                 # everything, defaults below: about 7-10 minutes on 2 cores
#   QUICK=1 bench/run.sh         # smoke test of the whole harness: under 2 minutes
#   ROWS="1 4" ROUNDS=5 bench/run.sh
#
# It builds anteroom (cargo build --release; CARGO_TARGET_DIR is honoured), starts everything
# it needs on 127.0.0.1 ports PORT_BASE+0..+99 (9500-9599 by default), measures with wrk, and
# stops every process it started by PID on exit (trap EXIT: TERM, then KILL after 12 s).
#
#   :+0   origin       nginx, 1 worker, static /1k (1024 B) and /64k (65536 B), keepalive
#   :+1   origin h2c   the same nginx, `listen ... http2` (prior knowledge); row 8 only
#   :+10  nginx        reverse proxy, 1 worker, upstream keepalive 64          rows 1, 2
#   :+11  haproxy      mode http, nbthread 1, keep-alive on both sides         row 1
#   :+12  nginx        the same with 2 workers (listen reuseport)              row 3
#   :+13  haproxy      the same with nbthread 2                                row 3
#   :+20  anteroom     rooms pass (enabled = false), adm (admits everyone),
#                      q (active_users = 1, taken), pow (join challenge)       rows 1, 2, 4, 7
#   :+30  anteroom     room pass, not pinned                                   row 3
#   :+40  anteroom     room flash (active_users = 1, taken), fresh process     row 5
#   :+50  anteroom     rooms m1..mN (active_users = 1, taken), fresh process   row 6
#   :+60  anteroom     rooms h1 (HTTP/1.1 origin), h2 (origin_protocol = "h2") row 8
#   anteroom admin listeners are on the port above their public one (:+21, :+31, ...).
#
# Rows (each measured, or printed as "not run: <reason>"):
#   1 pass-through 1 KiB and 64 KiB: anteroom (room enabled = false) vs nginx vs haproxy
#   2 admitted visitor 1 KiB and 64 KiB: a valid session cookie (taken with curl) on every request
#   3 all cores, 1 KiB pass-through: anteroom vs nginx 2 workers vs haproxy 2 threads
#   4 queued answers, one queued visitor of a full room: (a) the waiting page (cookie,
#     Accept: text/html), (b) GET /__anteroom/status with Anteroom-Token, (c) XHR (cookie,
#     Accept: application/json; the 429 JSON). Ratio to anteroom pass-through 1 KiB, target >= 2x
#     Also (d) the status poll of an admitted visitor (200 JSON) and (e) POST /__anteroom/join
#     without a solution in room pow (join_challenge = "pow"): target (e) costs less gateway CPU
#     per request than (d)
#   5 flash crowd: FLASH_N new visitors (no cookie) into a full room as fast as wrk sends; join
#     rate, socket errors, and the admin API's queue_depth must equal the joins answered
#   6 memory: MEM_TOTAL visitors queued across MEM_ROOMS rooms (own Host each, abandon_after
#     1h); peak RSS (VmHWM) of the gateway against MEM_TARGET_MB
#   7 reload under load: admitted 1 KiB for RELOAD_SECS while RELOADS SIGHUPs are sent (config
#     file touched before each), against the same run without reloads: failed requests, p99
#   8 HTTP/2 to the origin: runs only when README.md or docs/ mention origin_protocol
#
# Layout (made for a 2-core machine): rows 1, 2, 4-8 are "shared": the thing under test AND
# the origin are pinned to CPU_SUT, wrk (1 thread) to CPU_LOAD, so every proxy has one core:
# nginx 1 worker, haproxy 1 thread, anteroom on tokio's single-threaded scheduler (it sees one
# CPU). Row 3 is "none": nothing is pinned (the origin is moved onto every core for its runs),
# wrk runs ALL_THREADS threads. Throughput runs are interleaved: each round runs every target
# once, ROUNDS rounds, and the table shows medians (noise hits every target alike). Rows 5-7
# run once. A throughput run where wrk used 90% or more of a core per thread is flagged in its
# notes (the load generator, not the thing under test, may have been the limit); rows 5 and 6
# give the gateway's CPU beside wrk's (a gateway at 100% of its core is the limit).
#
# Knobs (environment; QUICK=1 changes the defaults shown as [full | quick]):
#   QUICK          0 or 1: smoke-test sizes [0]
#   ROUNDS         interleaved rounds of the throughput rows 1-4 and 8 [3 | 1]
#   DURATION       seconds per wrk run in those rounds [5 | 1]
#   WARMUP         seconds of warm-up per target before the rounds, 0 = none [1]
#   PAUSE          seconds between two runs [1 | 0]
#   CONNS          wrk connections [64]
#   ALL_THREADS    wrk threads in row 3 [2]
#   FLASH_N        new visitors of row 5 [100000 | 10000]
#   MEM_TOTAL      visitors queued in row 6 [1000000 | 100000]
#   MEM_ROOMS      rooms they are spread over [4]
#   MEM_TARGET_MB  row 6's target, MB of VmHWM [300]
#   RELOAD_SECS    length of each of row 7's two runs [30 | 5]
#   RELOADS        SIGHUPs during the second one [100 | 10]
#   RELOAD_EVERY   seconds between two SIGHUPs [0.28]
#   ROWS           rows to run, e.g. "1 4 5" [1 2 3 4 5 6 7 8]
#   ROW8_FORCE     1: attempt row 8 even without origin_protocol in README.md or docs/ (harness test) [0]
#   CPU_SUT        CPU of the thing under test and the origin [0]
#   CPU_LOAD       CPU of wrk [1]
#   PORT_BASE      first of the 100 ports used [9500]
#   BUILD          1: cargo build --release first; 0: use the binary as it is [1]
#   ANTEROOM_BIN   the binary to test (implies no build)
#                  [${CARGO_TARGET_DIR:-<repo>/target}/release/anteroom]
#   KEEP           1: keep the whole work folder (configs, state dirs, logs) [0]
#
# Output: the table (GitHub markdown) on stdout, after the date, nproc and tool versions.
# Results stay in a temp dir printed at the end: runs.csv (one line per wrk run), facts.csv
# (single measurements), table.md, conf/ and logs/. Progress goes to stderr.
# Exit status: 0 done (row verdicts are in the table), 1 a setup or measurement failure.

set -euo pipefail
export LC_ALL=C

die() { echo "run.sh: error: $*" >&2; exit 1; }
log() { printf 'run.sh: %(%T)T %s\n' -1 "$*" >&2; }

# ---------------------------------------------------------------- knobs
QUICK=${QUICK:-0}
[[ $QUICK == 0 || $QUICK == 1 ]] || die "QUICK must be 0 or 1"
pick() { if (( QUICK )); then echo "$2"; else echo "$1"; fi; }   # full quick
ROUNDS=${ROUNDS:-$(pick 3 1)}
DURATION=${DURATION:-$(pick 5 1)}
WARMUP=${WARMUP:-1}
PAUSE=${PAUSE:-$(pick 1 0)}
CONNS=${CONNS:-64}
ALL_THREADS=${ALL_THREADS:-2}
FLASH_N=${FLASH_N:-$(pick 100000 10000)}
MEM_TOTAL=${MEM_TOTAL:-$(pick 1000000 100000)}
MEM_ROOMS=${MEM_ROOMS:-4}
MEM_TARGET_MB=${MEM_TARGET_MB:-300}
RELOAD_SECS=${RELOAD_SECS:-$(pick 30 5)}
RELOADS=${RELOADS:-$(pick 100 10)}
RELOAD_EVERY=${RELOAD_EVERY:-0.28}
ROWS=${ROWS:-"1 2 3 4 5 6 7 8"}
ROW8_FORCE=${ROW8_FORCE:-0}
CPU_SUT=${CPU_SUT:-0}
CPU_LOAD=${CPU_LOAD:-1}
PORT_BASE=${PORT_BASE:-9500}
BUILD=${BUILD:-1}
ANTEROOM_BIN=${ANTEROOM_BIN:-}
KEEP=${KEEP:-0}

for v in ROUNDS DURATION WARMUP CONNS ALL_THREADS FLASH_N MEM_TOTAL MEM_ROOMS MEM_TARGET_MB \
  RELOAD_SECS RELOADS CPU_SUT CPU_LOAD PORT_BASE BUILD KEEP ROW8_FORCE; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
for v in PAUSE RELOAD_EVERY; do
  [[ ${!v} =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$v must be a number of seconds (got '${!v}')"
done
(( ROUNDS >= 1 && DURATION >= 1 && CONNS >= 1 && ALL_THREADS >= 1 )) || die "ROUNDS, DURATION, CONNS, ALL_THREADS must be >= 1"
(( FLASH_N >= 1 && MEM_ROOMS >= 1 && MEM_TOTAL >= MEM_ROOMS )) || die "FLASH_N >= 1 and MEM_TOTAL >= MEM_ROOMS >= 1"
(( PORT_BASE >= 1024 && PORT_BASE <= 65435 )) || die "PORT_BASE must leave room for 100 ports"
for r in $ROWS; do [[ $r =~ ^[1-8]$ ]] || die "ROWS may only hold 1..8 (got '$r')"; done
awk -v n="$RELOADS" -v e="$RELOAD_EVERY" -v s="$RELOAD_SECS" 'BEGIN { exit !(n * e < s - 0.2) }' \
  || die "RELOADS x RELOAD_EVERY must end before RELOAD_SECS (with 0.2 s to spare)"
NCPU=$(nproc)
(( CPU_SUT < NCPU && CPU_LOAD < NCPU )) || die "CPU_SUT and CPU_LOAD must be below nproc ($NCPU)"
(( CPU_SUT != CPU_LOAD )) || echo "run.sh: warning: CPU_SUT = CPU_LOAD, wrk shares the core under test" >&2
ALL_CPUS="0-$(( NCPU - 1 ))"
want() { [[ " $ROWS " == *" $1 "* ]]; }

for c in wrk nginx haproxy curl taskset timeout awk; do
  command -v "$c" >/dev/null || die "missing $c"
done
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

P_ORIGIN=$PORT_BASE;              P_ORIGIN_H2=$(( PORT_BASE + 1 ))
P_NGINX1=$(( PORT_BASE + 10 ));   P_HAPROXY1=$(( PORT_BASE + 11 ))
P_NGINX2=$(( PORT_BASE + 12 ));   P_HAPROXY2=$(( PORT_BASE + 13 ))
P_GW=$(( PORT_BASE + 20 ));       P_GWALL=$(( PORT_BASE + 30 ))
P_FLASH=$(( PORT_BASE + 40 ));    P_MEM=$(( PORT_BASE + 50 ));   P_GWH2=$(( PORT_BASE + 60 ))

# ---------------------------------------------------------------- processes, cleanup
PIDS=()                 # every long-running process started here, in start order
PID_origin=""; PID_nginx1=""; PID_haproxy1=""; PID_nginx2=""; PID_haproxy2=""   # set by start_bg
PID_gw=""; PID_gwall=""; PID_flash=""; PID_mem=""; PID_gwh2=""
declare -A START=()     # pid -> start time in /proc/pid/stat, so a reused pid is never signalled
WRK_PID=""
OUT=""; W=""

starttime() {   # field 22 of /proc/pid/stat (index 19 after "pid (comm) ")
  local s f; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }; read -r -a f <<<"$s"; echo "${f[19]}"
}
ours() { [[ -n ${START[$1]:-} && "$(starttime "$1" 2>/dev/null || true)" == "${START[$1]}" ]]; }
note_start() { START[$1]=$(starttime "$1" || echo gone); }
children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }
tree_of() { echo "$1"; children "$1"; }

stop_pids() {   # TERM, up to 12 s (anteroom drains), then KILL; only processes still ours
  local p i alive
  for p in "$@"; do if ours "$p"; then kill -TERM "$p" 2>/dev/null || true; fi; done
  for ((i = 0; i < 120; i++)); do
    alive=0
    for p in "$@"; do if ours "$p"; then alive=1; fi; done
    (( alive )) || break
    sleep 0.1
  done
  for p in "$@"; do if ours "$p"; then kill -KILL "$p" 2>/dev/null || true; fi; done
}

cleanup() {
  local rc=$? i rev=()
  trap - EXIT INT TERM
  if [[ -n $WRK_PID ]]; then stop_pids "$WRK_PID"; fi
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do rev+=("${PIDS[i]}"); done
  stop_pids "${rev[@]+"${rev[@]}"}"
  wait 2>/dev/null || true
  if [[ -n $W && -d $W && $KEEP != 1 ]]; then rm -rf -- "$W"; fi
  if (( rc != 0 )) && [[ -n $OUT ]]; then echo "run.sh: stopped (exit $rc); results so far in $OUT" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_bg() {   # name cpus('' = not pinned) cmd... -> PID_<name>; taskset execs, so $! is the process
  local name=$1 cpus=$2 pid; shift 2
  local pin=(); [[ -n $cpus ]] && pin=(taskset -c "$cpus")
  "${pin[@]}" "$@" >"$OUT/logs/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid"); note_start "$pid"
  printf -v "PID_$name" '%s' "$pid"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

http_code() {   # url curl-args... -> status code, 000 when nothing answers
  local url=$1; shift
  curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$@" "$url" 2>/dev/null || true
}

wait_up() {   # name pid url secs curl-args... : until something answers at url (any status)
  local name=$1 pid=$2 url=$3 secs=$4 i code; shift 4
  for ((i = 0; i < secs * 10; i++)); do
    ours "$pid" || { tail -20 "$OUT/logs/$name.log" >&2; return 1; }
    code=$(http_code "$url" "$@")
    [[ $code != 000 && -n $code ]] && return 0
    sleep 0.1
  done
  echo "run.sh: $name did not answer at $url within ${secs}s" >&2
  return 1
}

expect_body() {   # what url code size curl-args...
  local what=$1 url=$2 code=$3 size=$4 got; shift 4
  got=$(curl -s -o /dev/null --max-time 5 -w '%{http_code} %{size_download}' "$@" "$url" || true)
  [[ $got == "$code $size" ]] || die "$what: $url answered '$got', expected '$code $size'"
}

visit() {   # port host path accept [curl-args...] -> V_CODE V_COOKIE V_TYPE V_SIZE V_BODY(file)
  local port=$1 host=$2 path=$3 accept=$4; shift 4
  local out
  out=$(curl -s -D "$W/visit.h" -o "$W/visit.b" --max-time 5 -w '%{http_code} %{content_type}' \
    -H "Host: $host" -H "Accept: $accept" "$@" "http://127.0.0.1:$port$path" || echo 000)
  V_CODE=${out%% *}; V_TYPE=${out#* }
  V_COOKIE=$(tr -d '\r' <"$W/visit.h" | awk -F': ' 'tolower($1) == "set-cookie" { split($2, c, ";"); print c[1]; exit }')
  V_SIZE=$(stat -c %s "$W/visit.b"); V_BODY=$W/visit.b
}

admin_num() {   # admin-port room field -> number (first occurrence in GET /api/v1/rooms/ROOM)
  curl -s --max-time 5 "http://127.0.0.1:$1/api/v1/rooms/$2" \
    | grep -o "\"$3\":[0-9]*" | awk -F: 'NR == 1 { print $2 }' || true
}

kb_of() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || true; }   # pid VmHWM|VmRSS

cpu_ticks() {   # pids... -> utime+stime ticks, summed
  local p s f total=0
  for p in "$@"; do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    s=${s##*) }; read -r -a f <<<"$s"
    total=$(( total + f[11] + f[12] ))   # utime, stime (fields 14, 15)
  done
  echo "$total"
}

# ---------------------------------------------------------------- work folder, configs
OUT=$(mktemp -d -t anteroom-bench.XXXXXX) || die "mktemp failed"
W=$OUT/work
mkdir -p "$OUT/logs" "$OUT/conf" "$W/www" "$W/origin" "$W/nginx1" "$W/nginx2"
chmod 755 "$OUT" "$W"   # nginx workers run as nobody when started by root
head -c 1024 /dev/zero | tr '\0' 'a' >"$W/www/1k"
head -c 65536 /dev/zero | tr '\0' 'b' >"$W/www/64k"
chmod -R a+rX "$W/www"
CSV=$OUT/runs.csv
FACTS=$OUT/facts.csv
echo "row,id,round,seconds,requests,rps,p50_us,p90_us,p99_us,max_us,sock_err,non2xx,wrk_cpu_pct,sut_cpu_us_per_req" >"$CSV"
echo "key,value" >"$FACTS"
fact() { echo "$1,$2" >>"$FACTS"; }

for p in P_ORIGIN P_ORIGIN_H2 P_NGINX1 P_HAPROXY1 P_NGINX2 P_HAPROXY2 P_GW P_GWALL P_FLASH P_MEM P_GWH2; do
  for q in "${!p}" $(( ${!p} + 1 )); do
    if port_in_use "$q"; then die "port 127.0.0.1:$q is in use (set PORT_BASE to move all ports)"; fi
  done
done

if [[ -n $ANTEROOM_BIN ]]; then
  BIN=$ANTEROOM_BIN
else
  BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/anteroom
  if (( BUILD )); then
    log "cargo build --release in $REPO"
    (cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"
  fi
fi
[[ -x $BIN ]] || die "no anteroom binary at $BIN (build it, or set ANTEROOM_BIN)"

# Row 8 needs origin_protocol in the binary; the docs say when it exists.
H2_REASON=""
if ! want 8; then H2_REASON="not selected (ROWS)"
elif ! grep -rq origin_protocol "$REPO/README.md" "$REPO/docs" && (( ! ROW8_FORCE )); then H2_REASON="origin_protocol not built yet"
fi

nginx_head() {   # prefix workers
  cat <<EOF
worker_processes $2;
daemon off;
master_process on;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1/body; proxy_temp_path $1/proxy; fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;
  keepalive_timeout 75s; keepalive_requests 1000000;
  tcp_nodelay on;
EOF
}

{ nginx_head "$W/origin" 1; cat <<EOF
  default_type application/octet-stream;
  sendfile on; tcp_nopush on;
  open_file_cache max=16 inactive=120s;
  server { listen 127.0.0.1:$P_ORIGIN backlog=4096; root $W/www; location / { } }
EOF
if [[ -z $H2_REASON ]]; then cat <<EOF
  server { listen 127.0.0.1:$P_ORIGIN_H2 http2 backlog=4096; root $W/www; location / { } }
EOF
fi
echo "}"; } >"$W/origin/nginx.conf"

nginx_proxy() {   # prefix workers port listen-extra
  nginx_head "$1" "$2"; cat <<EOF
  upstream origin {
    server 127.0.0.1:$P_ORIGIN;
    keepalive 64; keepalive_requests 1000000; keepalive_timeout 75s;
  }
  server {
    listen 127.0.0.1:$3 backlog=4096 $4;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffer_size 8k; proxy_buffers 16 8k;   # a whole 64 KiB body in memory
      proxy_max_temp_file_size 0;
    }
  }
}
EOF
}
nginx_proxy "$W/nginx1" 1 "$P_NGINX1" "" >"$W/nginx1/nginx.conf"
nginx_proxy "$W/nginx2" 2 "$P_NGINX2" reuseport >"$W/nginx2/nginx.conf"

haproxy_cfg() {   # threads port
  cat <<EOF
global
  nbthread $1
  maxconn 4096
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 75s
  timeout server 75s
  timeout http-keep-alive 75s
  http-reuse safe
frontend fe
  bind 127.0.0.1:$2
  default_backend be
backend be
  server origin 127.0.0.1:$P_ORIGIN
EOF
}
haproxy_cfg 1 "$P_HAPROXY1" >"$W/haproxy1.cfg"
haproxy_cfg 2 "$P_HAPROXY2" >"$W/haproxy2.cfg"

gw_head() {   # name port
  cat <<EOF
tick = "1s"
[listen]
http = "127.0.0.1:$2"
admin = "127.0.0.1:$(( $2 + 1 ))"
[state]
dir = "$W/state-$1"
[log]
access = false
EOF
}
room() {   # name origin-port enabled active_users [extra line]
  cat <<EOF

[[room]]
name = "$1"
hosts = ["$1.bench"]
origin = "http://127.0.0.1:$2"
enabled = $3
active_users = $4
session_ttl = "1h"
abandon_after = "1h"
${5:-}
EOF
}
{ gw_head gw "$P_GW"; room pass "$P_ORIGIN" false 1000000; room adm "$P_ORIGIN" true 1000000
  room q "$P_ORIGIN" true 1; room pow "$P_ORIGIN" true 1 'join_challenge = "pow"'; } >"$W/gw.toml"
{ gw_head gwall "$P_GWALL"; room pass "$P_ORIGIN" false 1000000; } >"$W/gwall.toml"
{ gw_head flash "$P_FLASH"; room flash "$P_ORIGIN" true 1; } >"$W/flash.toml"
{ gw_head mem "$P_MEM"; for ((i = 1; i <= MEM_ROOMS; i++)); do room "m$i" "$P_ORIGIN" true 1; done; } >"$W/mem.toml"
{ gw_head gwh2 "$P_GWH2"; room h1 "$P_ORIGIN" false 1000000
  room h2 "$P_ORIGIN_H2" false 1000000 'origin_protocol = "h2"'; } >"$W/gwh2.toml"

# wrk scripts. Both print a "PB" line from done(); getrusage gives wrk's own CPU time.
cat >"$W/common.lua" <<'EOF'
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long s; long us; } bench_timeval;
typedef struct { bench_timeval utime; bench_timeval stime; long rest[14]; } bench_rusage;
int getrusage(int who, bench_rusage *usage);
typedef struct { long s; long ns; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
int kill(int pid, int sig);
int getpid(void);
unsigned long pthread_self(void);
]]
local ru = ffi.new("bench_rusage")
local ts = ffi.new("bench_timespec")
function bench_now() ffi.C.clock_gettime(1, ts); return tonumber(ts.s) + tonumber(ts.ns) * 1e-9 end
function bench_stop_wrk() ffi.C.kill(ffi.C.getpid(), 2) end   -- SIGINT: wrk ends its run early
function bench_thread_id() return ffi.C.pthread_self() end
function bench_report(summary, latency)
  ffi.C.getrusage(0, ru)
  local cpu = tonumber(ru.utime.s) + tonumber(ru.utime.us) / 1e6 + tonumber(ru.stime.s) + tonumber(ru.stime.us) / 1e6
  local s = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("PB %d %.3f %.1f %d %d %d %d %d %d %.0f\n",
    summary.requests, s, summary.requests / s,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.timeout, e.status, 100 * cpu / s))
end
EOF
{ echo "dofile(\"$W/common.lua\")"; cat <<'EOF'
function done(summary, latency, requests) bench_report(summary, latency) end
EOF
} >"$W/report.lua"
# The same report, every request a POST without a body (a join that brings no solution).
{ cat "$W/report.lua"; echo 'wrk.method = "POST"'; } >"$W/post.lua"
# Joins: the first JOIN_N requests are new visitors (no cookie, GET of wrk's URL); after the
# last is sent, connections ask GET /__anteroom/status without a token (404, takes no place), so
# the room gets exactly JOIN_N joins. When every join has its answer wrk stops at once. Run with
# one wrk thread (the counters are per thread). wrk 4.1 calls request() once on the main thread
# to check the request (script_verify_request) before the run: that call is not a join sent.
{ echo "dofile(\"$W/common.lua\")"; cat <<'EOF'
n = tonumber(os.getenv("JOIN_N") or "0")
sent, queued, other, idle, t_first, t_last = 0, 0, 0, 0, 0, 0
local join_req, idle_req, stopped, main_thread
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  join_req = wrk.format(nil, nil)
  idle_req = wrk.format(nil, "/__anteroom/status")
  main_thread = bench_thread_id()
end
function request()
  if sent < n then
    if sent == 0 then
      if bench_thread_id() == main_thread then return join_req end   -- wrk's check, not sent
      t_first = bench_now()
    end
    sent = sent + 1
    return join_req
  end
  return idle_req
end
function response(status, headers, body)
  if status == 404 then idle = idle + 1; return end
  if status == 429 then queued = queued + 1 else other = other + 1 end
  if not stopped and queued + other >= n then
    stopped = true
    t_last = bench_now()
    bench_stop_wrk()
    wrk.thread:stop()
  end
end
function done(summary, latency, requests)
  bench_report(summary, latency)
  local s, q, o, i, secs = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("sent"); q = q + t:get("queued"); o = o + t:get("other"); i = i + t:get("idle")
    local tl = t:get("t_last")
    if tl > 0 then secs = math.max(secs, tl - t:get("t_first")) end
  end
  io.write(string.format("JN %d %d %d %d %.6f\n", s, q, o, i, secs))
end
EOF
} >"$W/joins.lua"
cp "$W"/*.toml "$W"/*.cfg "$W"/*.lua "$OUT/conf/"
cp "$W/origin/nginx.conf" "$OUT/conf/origin-nginx.conf"; cp "$W/nginx1/nginx.conf" "$OUT/conf/nginx1.conf"
cp "$W/nginx2/nginx.conf" "$OUT/conf/nginx2.conf"

for d in origin nginx1 nginx2; do
  nginx -t -q -p "$W/$d" -e "$W/$d/error.log" -c "$W/$d/nginx.conf" 2>"$OUT/logs/$d-check.log" \
    || die "nginx config $d invalid: $(cat "$OUT/logs/$d-check.log")"
done
for h in haproxy1 haproxy2; do haproxy -c -q -f "$W/$h.cfg" >/dev/null || die "haproxy config $h invalid"; done
for g in gw gwall flash mem; do
  "$BIN" check "$W/$g.toml" >"$OUT/logs/$g-check.log" 2>&1 || die "anteroom check $g.toml: $(cat "$OUT/logs/$g-check.log")"
done

# ---------------------------------------------------------------- start
NEED_GW=0; for r in 1 2 4 7; do if want "$r"; then NEED_GW=1; fi; done
start_bg origin "$CPU_SUT" nginx -p "$W/origin" -e "$W/origin/error.log" -c "$W/origin/nginx.conf"
wait_up origin "$PID_origin" "http://127.0.0.1:$P_ORIGIN/1k" 10 || die "origin nginx did not start"
expect_body origin "http://127.0.0.1:$P_ORIGIN/1k" 200 1024
expect_body origin "http://127.0.0.1:$P_ORIGIN/64k" 200 65536
ORIGIN_PLACE=$CPU_SUT

if want 1 || want 2; then
  start_bg nginx1 "$CPU_SUT" nginx -p "$W/nginx1" -e "$W/nginx1/error.log" -c "$W/nginx1/nginx.conf"
  wait_up nginx1 "$PID_nginx1" "http://127.0.0.1:$P_NGINX1/1k" 10 || die "nginx proxy did not start"
  expect_body nginx "http://127.0.0.1:$P_NGINX1/64k" 200 65536
fi
if want 1; then
  start_bg haproxy1 "$CPU_SUT" haproxy -db -f "$W/haproxy1.cfg"
  wait_up haproxy1 "$PID_haproxy1" "http://127.0.0.1:$P_HAPROXY1/1k" 10 || die "haproxy did not start"
  expect_body haproxy "http://127.0.0.1:$P_HAPROXY1/64k" 200 65536
fi
if want 3; then
  start_bg nginx2 "" nginx -p "$W/nginx2" -e "$W/nginx2/error.log" -c "$W/nginx2/nginx.conf"
  wait_up nginx2 "$PID_nginx2" "http://127.0.0.1:$P_NGINX2/1k" 10 || die "nginx (2 workers) did not start"
  start_bg haproxy2 "" haproxy -db -f "$W/haproxy2.cfg"
  wait_up haproxy2 "$PID_haproxy2" "http://127.0.0.1:$P_HAPROXY2/1k" 10 || die "haproxy (2 threads) did not start"
  start_bg gwall "" "$BIN" run --config "$W/gwall.toml"
  wait_up gwall "$PID_gwall" "http://127.0.0.1:$(( P_GWALL + 1 ))/healthz" 30 || die "anteroom (all cores) did not start"
  expect_body "anteroom all cores" "http://127.0.0.1:$P_GWALL/1k" 200 1024 -H "Host: pass.bench"
fi
if (( NEED_GW )); then
  start_bg gw "$CPU_SUT" "$BIN" run --config "$W/gw.toml"
  wait_up gw "$PID_gw" "http://127.0.0.1:$(( P_GW + 1 ))/healthz" 30 || die "anteroom did not start"
  for b in 1k:1024 64k:65536; do
    expect_body "anteroom pass-through" "http://127.0.0.1:$P_GW/${b%:*}" 200 "${b#*:}" -H "Host: pass.bench"
  done
fi
if [[ -z $H2_REASON ]]; then
  code=""
  if curl -V | grep -qi http2; then
    code=$(curl -s -o /dev/null --max-time 5 -w '%{http_code} %{size_download}' --http2-prior-knowledge "http://127.0.0.1:$P_ORIGIN_H2/1k" || true)
  fi
  if [[ -n $code && $code != "200 1024" ]]; then
    H2_REASON="the h2c origin answered '$code' for /1k"
  elif ! "$BIN" check "$W/gwh2.toml" >"$OUT/logs/gwh2-check.log" 2>&1; then
    H2_REASON="anteroom check refused origin_protocol = \"h2\": $(head -1 "$OUT/logs/gwh2-check.log" | sed 's/, expected .*//; s/^.*gwh2.toml://')"
  else
    start_bg gwh2 "$CPU_SUT" "$BIN" run --config "$W/gwh2.toml"
    if ! wait_up gwh2 "$PID_gwh2" "http://127.0.0.1:$(( P_GWH2 + 1 ))/healthz" 30; then
      H2_REASON="the gateway with an h2 origin did not start (logs/gwh2.log)"
    else
      code=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -H 'Host: h2.bench' "http://127.0.0.1:$P_GWH2/1k" || true)
      [[ $code == "200 1024" ]] || H2_REASON="h2 room answered '$code' for /1k, expected '200 1024'"
    fi
  fi
fi

# Sessions: an admitted visitor of adm (rows 2, 7); q's one slot taken and a queued visitor (row 4).
if want 2 || want 4 || want 7; then
  visit "$P_GW" adm.bench /1k application/json
  [[ $V_CODE == 200 && -n $V_COOKIE ]] || die "adm room: first visit answered $V_CODE (cookie '$V_COOKIE'), expected 200 with a cookie"
  ADM_COOKIE=$V_COOKIE; ADM_TOKEN=${V_COOKIE#*=}
  visit "$P_GW" adm.bench /1k application/json -H "Cookie: $ADM_COOKIE"
  [[ $V_CODE == 200 && $V_SIZE == 1024 ]] || die "adm room: the admitted visitor got $V_CODE ($V_SIZE bytes)"
fi
if want 4; then
  visit "$P_GW" q.bench /1k application/json
  [[ $V_CODE == 200 ]] || die "q room: the first visitor was not admitted ($V_CODE)"
  visit "$P_GW" q.bench /1k application/json
  [[ $V_CODE == 429 && -n $V_COOKIE ]] || die "q room: the second visitor got $V_CODE (cookie '$V_COOKIE'), expected 429 queued"
  Q_COOKIE=$V_COOKIE; Q_TOKEN=${V_COOKIE#*=}
  visit "$P_GW" q.bench /1k text/html -H "Cookie: $Q_COOKIE"
  [[ $V_CODE == 200 && $V_TYPE == text/html* ]] || die "q room: waiting page answered $V_CODE $V_TYPE"
  fact q_page_bytes "$V_SIZE"
  visit "$P_GW" q.bench /__anteroom/status application/json -H "Anteroom-Token: $Q_TOKEN"
  if [[ $V_CODE != 200 ]] || ! grep -q '"state":"queued"' "$V_BODY"; then
    die "q room: status answered $V_CODE $(head -c 200 "$V_BODY")"
  fi
  visit "$P_GW" q.bench /1k application/json -H "Cookie: $Q_COOKIE"
  [[ $V_CODE == 429 && $V_TYPE == application/json* ]] || die "q room: XHR answered $V_CODE $V_TYPE"
fi

# ---------------------------------------------------------------- throughput runs
declare -A ROW_OF=(
  [nginx-1k]=1 [haproxy-1k]=1 [pass-1k]=1 [nginx-64k]=1 [haproxy-64k]=1 [pass-64k]=1
  [adm-1k]=2 [adm-64k]=2 [nginx2-1k]=3 [haproxy2-1k]=3 [all-1k]=3
  [page]=4 [status]=4 [xhr]=4 [status-adm]=4 [challenge]=4 [reload-base]=7 [reload-hup]=7 [h2o-h1]=8 [h2o-h2]=8
)
spec() {   # id -> S_URL S_HDRS S_LAYOUT S_THREADS S_SUT
  local port path=/1k host=""
  S_HDRS=(); S_LAYOUT=shared; S_THREADS=1; S_SCRIPT=$W/report.lua
  case $1 in
    *-64k) path=/64k ;;
  esac
  case $1 in
    nginx-*)     port=$P_NGINX1;   S_SUT=$PID_nginx1 ;;
    haproxy-*)   port=$P_HAPROXY1; S_SUT=$PID_haproxy1 ;;
    pass-*)      port=$P_GW; S_SUT=$PID_gw; host=pass.bench ;;
    adm-*|reload-*) port=$P_GW; S_SUT=$PID_gw; host=adm.bench; S_HDRS=(-H "Cookie: $ADM_COOKIE") ;;
    nginx2-1k)   port=$P_NGINX2;   S_SUT=$PID_nginx2;   S_LAYOUT=none; S_THREADS=$ALL_THREADS ;;
    haproxy2-1k) port=$P_HAPROXY2; S_SUT=$PID_haproxy2; S_LAYOUT=none; S_THREADS=$ALL_THREADS ;;
    all-1k)      port=$P_GWALL;    S_SUT=$PID_gwall; host=pass.bench; S_LAYOUT=none; S_THREADS=$ALL_THREADS ;;
    page)   port=$P_GW; S_SUT=$PID_gw; host=q.bench; S_HDRS=(-H "Cookie: $Q_COOKIE" -H "Accept: text/html") ;;
    status) port=$P_GW; S_SUT=$PID_gw; host=q.bench; path=/__anteroom/status
            S_HDRS=(-H "Anteroom-Token: $Q_TOKEN" -H "Accept: application/json") ;;
    xhr)    port=$P_GW; S_SUT=$PID_gw; host=q.bench; S_HDRS=(-H "Cookie: $Q_COOKIE" -H "Accept: application/json") ;;
    status-adm) port=$P_GW; S_SUT=$PID_gw; host=adm.bench; path=/__anteroom/status
            S_HDRS=(-H "Anteroom-Token: $ADM_TOKEN" -H "Accept: application/json") ;;
    challenge) port=$P_GW; S_SUT=$PID_gw; host=pow.bench; path=/__anteroom/join; S_SCRIPT=$W/post.lua
            S_HDRS=(-H "Accept: application/json") ;;
    h2o-h1) port=$P_GWH2; S_SUT=$PID_gwh2; host=h1.bench ;;
    h2o-h2) port=$P_GWH2; S_SUT=$PID_gwh2; host=h2.bench ;;
    *) die "unknown run id $1" ;;
  esac
  if [[ -n $host ]]; then S_HDRS+=(-H "Host: $host"); fi
  S_URL="http://127.0.0.1:$port$path"
}

place_origin() {   # shared|none: the origin shares CPU_SUT with the thing under test, or every core
  local cpus=$CPU_SUT p
  [[ $1 == none ]] && cpus=$ALL_CPUS
  [[ $cpus == "$ORIGIN_PLACE" ]] && return 0
  for p in $(tree_of "$PID_origin"); do taskset -a -p -c "$cpus" "$p" >/dev/null; done
  ORIGIN_PLACE=$cpus
}

start_wrk() {   # layout limit-seconds outfile wrk-args... (background; WRK_PID)
  local layout=$1 limit=$2 out=$3; shift 3
  local pin=(); [[ $layout == shared ]] && pin=(taskset -c "$CPU_LOAD")
  timeout -k 5 "$limit" "${pin[@]}" wrk "$@" >"$out" 2>&1 &
  WRK_PID=$!; note_start "$WRK_PID"
}
wait_wrk() { local rc=0; wait "$WRK_PID" || rc=$?; WRK_PID=""; return "$rc"; }

parse_pb() {   # outfile -> R_REQ R_SECS R_RPS R_P50 R_P90 R_P99 R_MAX R_SERR R_NON2XX R_WCPU
  local line
  line=$(awk '$1 == "PB"' "$1" | tail -1)
  [[ -n $line ]] || die "wrk gave no result: $(tail -5 "$1" | tr '\n' ' ')"
  read -r _ R_REQ R_SECS R_RPS R_P50 R_P90 R_P99 R_MAX R_SERR R_NON2XX R_WCPU <<<"$line"
}

LAST_SUT_US=""
measure() {   # id round seconds record(0|1) [function to run while wrk runs]
  local id=$1 r=$2 secs=$3 rec=$4 during=${5:-} out c0 c1 sut
  spec "$id"
  place_origin "$S_LAYOUT"
  out=$W/wrk.$id.out
  mapfile -t sut < <(tree_of "$S_SUT")
  c0=$(cpu_ticks "${sut[@]}")
  start_wrk "$S_LAYOUT" $(( secs + 30 )) "$out" -t"$S_THREADS" -c"$CONNS" -d"${secs}s" --timeout 5s \
    --latency -s "$S_SCRIPT" "${S_HDRS[@]}" "$S_URL"
  if [[ -n $during ]]; then "$during"; fi
  wait_wrk || die "wrk failed for $id: $(tail -5 "$out" | tr '\n' ' ')"
  c1=$(cpu_ticks "${sut[@]}")
  parse_pb "$out"
  (( rec )) || return 0
  LAST_SUT_US=$(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" -v n="$R_REQ" \
    'BEGIN { if (n > 0) printf "%.2f", 1e6 * (b - a) / hz / n; else print 0 }')
  echo "${ROW_OF[$id]},$id,$r,$R_SECS,$R_REQ,$R_RPS,$R_P50,$R_P90,$R_P99,$R_MAX,$R_SERR,$R_NON2XX,$R_WCPU,$LAST_SUT_US" >>"$CSV"
  log "$(printf 'round %s %-12s %9.0f rps  p50 %6d us  p99 %6d us  sock err %s  non-2xx %s  wrk cpu %s%%' \
    "$r" "$id" "$R_RPS" "$R_P50" "$R_P99" "$R_SERR" "$R_NON2XX" "$R_WCPU")"
}

IDS=()
add() { local i; for i in "$@"; do [[ " ${IDS[*]-} " == *" $i "* ]] || IDS+=("$i"); done; }
if want 1; then add nginx-1k haproxy-1k pass-1k; fi
if want 2; then add nginx-1k adm-1k; fi
if want 4; then add pass-1k page status xhr status-adm challenge; fi
if want 1; then add nginx-64k haproxy-64k pass-64k; fi
if want 2; then add nginx-64k adm-64k; fi
if want 3; then add nginx2-1k haproxy2-1k all-1k; fi
if [[ -z $H2_REASON ]]; then add h2o-h1 h2o-h2; fi

log "$NCPU cpus, rounds=$ROUNDS duration=${DURATION}s conns=$CONNS rows='$ROWS' results in $OUT"
if (( ${#IDS[@]} > 0 )); then
  if (( WARMUP > 0 )); then
    for id in "${IDS[@]}"; do measure "$id" 0 "$WARMUP" 0; done
  fi
  for ((r = 1; r <= ROUNDS; r++)); do
    for id in "${IDS[@]}"; do sleep "$PAUSE"; measure "$id" "$r" "$DURATION" 1; done
  done
fi

# ---------------------------------------------------------------- row 7: reload under load
send_hups() {   # RELOADS SIGHUPs, RELOAD_EVERY apart on a fixed schedule, the file touched before each
  local i t0 now target d every_us
  every_us=$(awk -v e="$RELOAD_EVERY" 'BEGIN { printf "%d", e * 1e6 }')
  t0=${EPOCHREALTIME/./}
  for ((i = 0; i < RELOADS; i++)); do
    target=$(( t0 + 100000 + i * every_us ))
    now=${EPOCHREALTIME/./}
    if (( target > now )); then d=$(( target - now )); sleep "$(( d / 1000000 )).$(printf %06d $(( d % 1000000 )))"; fi
    touch "$W/gw.toml"
    kill -HUP "$PID_gw"
  done
}
hup_lines() { grep -c 'configuration reloaded trigger="SIGHUP"' "$OUT/logs/gw.log" || true; }
reload_errors() {
  curl -s --max-time 5 "http://127.0.0.1:$(( P_GW + 1 ))/metrics" \
    | awk '/^anteroom_config_reloads_total\{result="error"\}/ { v = $2 } END { if (!NR) print "?"; else print v + 0 }'
}
if want 7; then
  log "row 7: ${RELOAD_SECS}s admitted 1 KiB without reloads, then with $RELOADS SIGHUPs"
  sleep "$PAUSE"
  measure reload-base 1 "$RELOAD_SECS" 1
  h0=$(hup_lines); e0=$(reload_errors)
  sleep "$PAUSE"
  measure reload-hup 1 "$RELOAD_SECS" 1 send_hups
  sleep 0.5
  h1=$(hup_lines); e1=$(reload_errors)
  ours "$PID_gw" || die "anteroom exited during the reload run (logs/gw.log)"
  fact reload_sighup_sent "$RELOADS"
  fact reload_sighup_applied $(( h1 - h0 ))
  fact reload_errors "$(awk -v a="$e0" -v b="$e1" 'BEGIN { if (a == "?" || b == "?") print "?"; else print b - a }')"
fi

# ---------------------------------------------------------------- rows 5, 6: joins
joins() {   # port host n gateway-pid -> J_SENT J_QUEUED J_OTHER J_IDLE J_SECS J_RATE J_SUT_US J_SUT_PCT, R_*
  local port=$1 host=$2 n=$3 pid=$4 out=$W/wrk.joins.out limit line c0 c1
  limit=$(( n / 1000 + 60 ))
  c0=$(cpu_ticks "$pid")
  export JOIN_N=$n
  start_wrk shared $(( limit + 30 )) "$out" -t1 -c"$CONNS" -d"${limit}s" --timeout 5s --latency \
    -s "$W/joins.lua" -H "Host: $host" -H "Accept: application/json" "http://127.0.0.1:$port/"
  wait_wrk || die "wrk (joins into $host) failed: $(tail -5 "$out" | tr '\n' ' ')"
  c1=$(cpu_ticks "$pid")
  parse_pb "$out"
  line=$(awk '$1 == "JN"' "$out" | tail -1)
  [[ -n $line ]] || die "joins into $host: no JN line: $(tail -5 "$out" | tr '\n' ' ')"
  read -r _ J_SENT J_QUEUED J_OTHER J_IDLE J_SECS <<<"$line"
  J_RATE=$(awk -v q="$J_QUEUED" -v o="$J_OTHER" -v s="$J_SECS" 'BEGIN { if (s > 0) printf "%.1f", (q + o) / s; else print 0 }')
  # the gateway's CPU over wrk's whole run (a few ms longer than the joins), per join and in %
  J_SUT_US=$(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" -v n="$J_SENT" \
    'BEGIN { if (n > 0) printf "%.2f", 1e6 * (b - a) / hz / n; else print 0 }')
  J_SUT_PCT=$(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" -v s="$R_SECS" \
    'BEGIN { if (s > 0) printf "%.0f", 100 * (b - a) / hz / s; else print 0 }')
}

gw_fresh() {   # name port -> starts a pinned anteroom, waits for it
  start_bg "$1" "$CPU_SUT" "$BIN" run --config "$W/$1.toml"
  local v="PID_$1"
  wait_up "$1" "${!v}" "http://127.0.0.1:$(( $2 + 1 ))/healthz" 30 || die "anteroom ($1) did not start"
}
fill_room() {   # port room: take its only slot
  visit "$1" "$2.bench" /1k application/json
  [[ $V_CODE == 200 ]] || die "room $2: the visitor taking the slot got $V_CODE"
}

if want 5; then
  log "row 5: flash crowd of $FLASH_N new visitors"
  gw_fresh flash "$P_FLASH"
  fill_room "$P_FLASH" flash
  qd0=$(admin_num $(( P_FLASH + 1 )) flash queue_depth)
  place_origin shared
  joins "$P_FLASH" flash.bench "$FLASH_N" "$PID_flash"
  sleep 0.2
  qd1=$(admin_num $(( P_FLASH + 1 )) flash queue_depth)
  echo "5,flash,1,$J_SECS,$R_REQ,$J_RATE,$R_P50,$R_P90,$R_P99,$R_MAX,$R_SERR,$R_NON2XX,$R_WCPU,$J_SUT_US" >>"$CSV"
  fact flash_gateway_cpu_pct "$J_SUT_PCT"; fact flash_wrk_cpu_pct "$R_WCPU"
  fact flash_sent "$J_SENT"; fact flash_queued_429 "$J_QUEUED"; fact flash_other_answers "$J_OTHER"
  fact flash_idle_404 "$J_IDLE"; fact flash_seconds "$J_SECS"; fact flash_join_rate "$J_RATE"
  fact flash_queue_depth_before "$qd0"; fact flash_queue_depth_after "$qd1"
  fact flash_socket_errors "$R_SERR"; fact flash_vmhwm_kb "$(kb_of "$PID_flash" VmHWM)"
  log "row 5: $J_QUEUED queued of $J_SENT in ${J_SECS}s ($J_RATE/s), queue_depth $qd0 -> $qd1, socket errors $R_SERR, gateway cpu $J_SUT_PCT%, wrk cpu $R_WCPU%"
  stop_pids "$PID_flash"
fi

if want 6; then
  per=$(( MEM_TOTAL / MEM_ROOMS ))
  log "row 6: $(( per * MEM_ROOMS )) queued across $MEM_ROOMS rooms"
  gw_fresh mem "$P_MEM"
  for ((i = 1; i <= MEM_ROOMS; i++)); do fill_room "$P_MEM" "m$i"; done
  fact mem_vmrss_kb_empty "$(kb_of "$PID_mem" VmRSS)"
  place_origin shared
  m_q=0; m_o=0; m_secs=0; m_serr=0; m_depth=0; m_cpu=""; m_wcpu=""
  for ((i = 1; i <= MEM_ROOMS; i++)); do
    joins "$P_MEM" "m$i.bench" "$per" "$PID_mem"
    echo "6,mem-m$i,1,$J_SECS,$R_REQ,$J_RATE,$R_P50,$R_P90,$R_P99,$R_MAX,$R_SERR,$R_NON2XX,$R_WCPU,$J_SUT_US" >>"$CSV"
    log "row 6: room m$i: $J_QUEUED queued in ${J_SECS}s ($J_RATE/s), socket errors $R_SERR, gateway cpu $J_SUT_PCT%, wrk cpu $R_WCPU%"
    m_q=$(( m_q + J_QUEUED )); m_o=$(( m_o + J_OTHER )); m_serr=$(( m_serr + R_SERR ))
    m_secs=$(awk -v a="$m_secs" -v b="$J_SECS" 'BEGIN { print a + b }')
    m_cpu+="${m_cpu:+/}$J_SUT_PCT"; m_wcpu+="${m_wcpu:+/}$R_WCPU"
  done
  # a snapshot of the full rooms, as the gateway writes one every 2 s anyway (its copy is part of the peak)
  curl -s --max-time 60 -X POST -H 'Content-Type: application/json' -o "$OUT/mem-snapshot.json" \
    "http://127.0.0.1:$(( P_MEM + 1 ))/api/v1/snapshot" || true
  fact mem_snapshot_sessions "$(grep -o '"sessions":[0-9]*' "$OUT/mem-snapshot.json" 2>/dev/null | cut -d: -f2 || true)"
  sleep 1
  for ((i = 1; i <= MEM_ROOMS; i++)); do
    d=$(admin_num $(( P_MEM + 1 )) "m$i" queue_depth); fact "mem_queue_depth_m$i" "${d:-?}"
    m_depth=$(( m_depth + ${d:-0} ))
  done
  fact mem_queued_429 "$m_q"; fact mem_other_answers "$m_o"; fact mem_queue_depth_sum "$m_depth"
  fact mem_socket_errors "$m_serr"; fact mem_join_seconds "$m_secs"
  fact mem_gateway_cpu_pct "$m_cpu"; fact mem_wrk_cpu_pct "$m_wcpu"
  fact mem_vmhwm_kb "$(kb_of "$PID_mem" VmHWM)"; fact mem_vmrss_kb "$(kb_of "$PID_mem" VmRSS)"
  log "row 6: queue depths sum $m_depth, VmHWM $(kb_of "$PID_mem" VmHWM) kB"
  stop_pids "$PID_mem"
fi

# ---------------------------------------------------------------- report
vals() { awk -F, -v id="$1" -v c="$2" 'NR > 1 && $2 == id && $3 > 0 { print $c }' "$CSV"; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
total() { awk '{ s += $1 } END { print s + 0 }'; }
factv() { awk -F, -v k="$1" '$1 == k { v = $2 } END { print v }' "$FACTS"; }
med() { vals "$1" "$2" | median; }   # id column
fmt_int() { awk -v n="$1" 'BEGIN { if (n == "") { print "-"; exit } s = sprintf("%.0f", n); r = "";
  while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) } print s r }'; }
fmt_lat() { awk -v u="$1" 'BEGIN { if (u == "") print "-"; else if (u < 1000) printf "%d µs\n", u;
  else if (u < 10000) printf "%.2f ms\n", u / 1000; else printf "%.1f ms\n", u / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.3f\n", a / b }'; }

TABLE=()
row_line() { TABLE+=("| $1 | $2 | $3 | $4 | $5 | $6 | $7 | $8 |"); }
not_run() { row_line "$1" "$2" - - - - - "not run: $3"; }
run_notes() {   # id -> spread, errors, wrk saturation
  local n mn mx se nx wc th
  n=$(vals "$1" 6 | wc -l)
  mn=$(vals "$1" 6 | sort -g | head -1); mx=$(vals "$1" 6 | sort -g | tail -1)
  se=$(vals "$1" 11 | total); nx=$(vals "$1" 12 | total); wc=$(med "$1" 13)
  spec "$1"; th=$S_THREADS
  printf '%s run%s, rps %s..%s; socket errors %s, non-2xx %s of %s; cpu µs/req %s' \
    "$n" "$( (( n == 1 )) || echo s)" "$(fmt_int "$mn")" "$(fmt_int "$mx")" "$se" "$(fmt_int "$nx")" \
    "$(fmt_int "$(vals "$1" 5 | total)")" "$(med "$1" 14)"
  if awk -v w="$wc" -v t="$th" 'BEGIN { exit !(w >= 90 * t) }'; then printf '; wrk %s%% cpu: load generator saturated' "$wc"; fi
}
thr_row() {   # row label id ref-id ref-label [extra note]
  local rps
  if [[ -z $(vals "$3" 6) ]]; then not_run "$1" "$2" "no runs recorded"; return 0; fi
  rps=$(med "$3" 6)
  row_line "$1" "$2" "$(fmt_int "$rps")" "$(fmt_lat "$(med "$3" 7)")" "$(fmt_lat "$(med "$3" 9)")" \
    "$(ratio "$rps" "$(med "$4" 6)")" "$5" "$(run_notes "$3")${6:+; $6}"
}

# Row 1
for b in 1k 64k; do
  lbl="1 KiB"; [[ $b == 64k ]] && lbl="64 KiB"
  if want 1; then
    thr_row 1 "pass-through $lbl: nginx (1 worker)" "nginx-$b" "nginx-$b" "nginx $lbl"
    thr_row 1 "pass-through $lbl: haproxy (1 thread)" "haproxy-$b" "nginx-$b" "nginx $lbl"
    thr_row 1 "pass-through $lbl: anteroom (enabled = false)" "pass-$b" "nginx-$b" "nginx $lbl"
  else not_run 1 "pass-through $lbl" "not selected (ROWS)"; fi
done
for b in 1k 64k; do
  lbl="1 KiB"; [[ $b == 64k ]] && lbl="64 KiB"
  if want 2; then thr_row 2 "admitted visitor $lbl: anteroom (session cookie)" "adm-$b" "nginx-$b" "nginx $lbl"
  else not_run 2 "admitted visitor $lbl" "not selected (ROWS)"; fi
done
if want 3; then
  thr_row 3 "all cores 1 KiB: nginx (2 workers)" nginx2-1k nginx2-1k "nginx 2 workers" "wrk -t$ALL_THREADS, nothing pinned"
  thr_row 3 "all cores 1 KiB: haproxy (2 threads)" haproxy2-1k nginx2-1k "nginx 2 workers"
  thr_row 3 "all cores 1 KiB: anteroom (not pinned)" all-1k nginx2-1k "nginx 2 workers"
else not_run 3 "all cores 1 KiB" "not selected (ROWS)"; fi
if want 4; then
  pass=$(med pass-1k 6)
  for q in page:"queued (a): waiting page, Accept: text/html" status:"queued (b): GET /__anteroom/status, Anteroom-Token" \
           xhr:"queued (c): XHR, Accept: application/json (429)"; do
    id=${q%%:*}; rps=$(med "$id" 6)
    verdict=$(awk -v a="$rps" -v b="$pass" 'BEGIN { if (a == "" || b == "") print "?"; else if (a >= 2 * b) print "met"; else print "NOT met" }')
    case $id in
      page)   extra="every answer the 200 waiting page (text/html, $(factv q_page_bytes) bytes)" ;;
      status) extra="non-2xx are the 429 'polling faster than poll_after_seconds' answers (the poll floor; only the first poll after a page view is a 200 status JSON)" ;;
      xhr)    extra="every answer is a 429 JSON by design (the poll floor answers a queued visitor's XHR), so non-2xx = requests" ;;
    esac
    thr_row 4 "${q#*:}" "$id" pass-1k "anteroom pass-through 1 KiB" "target >= 2x: $verdict; $extra"
  done
  thr_row 4 "status poll of an admitted visitor (200 JSON, no poll floor)" status-adm pass-1k "anteroom pass-through 1 KiB"
  cheaper=$(awk -v a="$(med challenge 14)" -v b="$(med status-adm 14)" 'BEGIN { if (a == "" || b == "") print "?"; else if (a < b) print "met"; else print "NOT met" }')
  thr_row 4 "join without a solution (pow room: a challenge, no place)" challenge status-adm "status poll of an admitted visitor" \
    "target: less gateway CPU per request than a status poll: $cheaper"
else not_run 4 "queued answers" "not selected (ROWS)"; fi
if want 5; then
  sent=$(factv flash_sent); qd=$(factv flash_queued_429); oth=$(factv flash_other_answers)
  d0=$(factv flash_queue_depth_before); d1=$(factv flash_queue_depth_after)
  ok=$(awk -v a="$d0" -v b="$d1" -v q="$qd" -v o="$oth" -v s="$sent" 'BEGIN { print (b - a == q + o && o == 0 && q == s) ? "yes" : "NO" }')
  row_line 5 "flash crowd: $(fmt_int "$sent") new visitors, full room" "$(fmt_int "$(factv flash_join_rate)") joins/s" \
    "$(fmt_lat "$(med flash 7)")" "$(fmt_lat "$(med flash 9)")" "$(ratio "$(factv flash_join_rate)" "$(med pass-1k 6)")" \
    "anteroom pass-through 1 KiB" \
    "$(fmt_int "$sent") joins sent, $(fmt_int $(( qd + oth ))) answered in $(awk -v s="$(factv flash_seconds)" 'BEGIN { printf "%.2f", s }') s ($(fmt_int "$qd") 429 queued, $oth other); queue_depth $d0 -> $d1, every one given a place: $ok; socket errors $(factv flash_socket_errors); CPU: gateway $(factv flash_gateway_cpu_pct)% of its core, wrk $(factv flash_wrk_cpu_pct)%; VmHWM $(awk -v k="$(factv flash_vmhwm_kb)" 'BEGIN { printf "%.1f", k / 1024 }') MiB"
else not_run 5 "flash crowd" "not selected (ROWS)"; fi
if want 6; then
  hwm=$(factv mem_vmhwm_kb); qsum=$(factv mem_queue_depth_sum); qd=$(factv mem_queued_429)
  mb=$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }')
  verdict=$(awk -v m="$mb" -v t="$MEM_TARGET_MB" -v q="$qsum" -v n="$MEM_TOTAL" 'BEGIN { if (m + 0 <= t) print "met"; else print "NOT met" }')
  scaled=""
  if (( MEM_TOTAL != 1000000 )); then scaled="; a smaller run than the 1,000,000 target"; fi
  rate=$(awk -v q="$qd" -v o="$(factv mem_other_answers)" -v s="$(factv mem_join_seconds)" 'BEGIN { if (s > 0) printf "%.0f", (q + o) / s }')
  row_line 6 "memory: $(fmt_int "$MEM_TOTAL") queued across $MEM_ROOMS rooms" "$(fmt_int "$rate") joins/s" \
    "$(fmt_lat "$(for i in $(seq "$MEM_ROOMS"); do vals "mem-m$i" 7; done | median)")" \
    "$(fmt_lat "$(for i in $(seq "$MEM_ROOMS"); do vals "mem-m$i" 9; done | median)")" \
    "$(awk -v m="$mb" -v t="$MEM_TARGET_MB" 'BEGIN { printf "%.3f", m / t }')" "VmHWM / $MEM_TARGET_MB MB" \
    "VmHWM $mb MB ($(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }') MiB), target <= $MEM_TARGET_MB MB: $verdict$scaled; queue depths sum $(fmt_int "$qsum") (429 answers $(fmt_int "$qd")); socket errors $(factv mem_socket_errors); CPU per room: gateway $(factv mem_gateway_cpu_pct)%, wrk $(factv mem_wrk_cpu_pct)%; VmRSS empty $(awk -v k="$(factv mem_vmrss_kb_empty)" 'BEGIN { printf "%.1f", k / 1024 }') MiB"
else not_run 6 "memory" "not selected (ROWS)"; fi
if want 7; then
  fb=$(( $(vals reload-base 11 | total) + $(vals reload-base 12 | total) ))
  fh=$(( $(vals reload-hup 11 | total) + $(vals reload-hup 12 | total) ))
  thr_row 7 "reload: admitted 1 KiB, ${RELOAD_SECS} s, no reloads" reload-base reload-base "itself" "failed requests $fb"
  thr_row 7 "reload: admitted 1 KiB, ${RELOAD_SECS} s, $RELOADS SIGHUPs" reload-hup reload-base "no-reload run" \
    "failed requests (socket errors + non-2xx) $fh; p99 $(ratio "$(med reload-hup 9)" "$(med reload-base 9)")x the no-reload run; SIGHUP reloads applied $(factv reload_sighup_applied) of $(factv reload_sighup_sent), reload errors $(factv reload_errors)"
else not_run 7 "reload under load" "not selected (ROWS)"; fi
if [[ -z $H2_REASON ]]; then
  thr_row 8 "HTTP/2 origin 1 KiB: anteroom, origin over HTTP/1.1" h2o-h1 h2o-h1 "itself"
  thr_row 8 "HTTP/2 origin 1 KiB: anteroom, origin_protocol = \"h2\" (h2c)" h2o-h2 h2o-h1 "HTTP/1.1 origin"
else not_run 8 "HTTP/2 origin" "$H2_REASON"; fi

{
  echo "## anteroom bench/run.sh"
  echo
  echo "- date: $(date -u)"
  echo "- nproc: $NCPU ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)), kernel $(uname -r)"
  echo "- anteroom: $("$BIN" --version 2>/dev/null || echo "?"), commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo ' (uncommitted changes)'), $BIN"
  echo "- tools: $(nginx -v 2>&1 | sed 's/.*version: //'), haproxy $(haproxy -v | awk 'NR == 1 { print $3 }'), wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }'), $(curl -V | awk 'NR == 1 { print $1 " " $2 }')"
  echo "- load average (1, 5, 15 min): $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (anything above 0 is other work sharing the cores)"
  echo "- settings: QUICK=$QUICK ROUNDS=$ROUNDS DURATION=${DURATION}s CONNS=$CONNS (interleaved rounds, medians); shared layout: thing under test + origin on CPU $CPU_SUT, wrk -t1 on CPU $CPU_LOAD; row 3 unpinned, wrk -t$ALL_THREADS"
  echo
  echo "| # | target | rps (median) | p50 | p99 | ratio | reference | notes |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |"
  printf '%s\n' "${TABLE[@]}"
  echo
  awk -F, -v t="$ALL_THREADS" 'NR > 1 && $1 != 5 && $1 != 6 { v = ($1 == 3) ? $13 / t : $13; if (v > m) m = v }
    END { printf "Load generator: wrk used at most %.0f%% of a core per thread in any throughput run (90%% or more is flagged in the notes); rows 5 and 6 give the gateway'"'"'s CPU beside wrk'"'"'s.\n", m }' "$CSV"
  echo "Raw numbers: $CSV (one line per wrk run), $FACTS; configs in $OUT/conf, logs in $OUT/logs."
} | tee "$OUT/table.md"
