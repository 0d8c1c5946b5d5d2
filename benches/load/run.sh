#!/usr/bin/env bash
# Load benchmark of the example server's POST /api/v1/chats (memory store and limiter,
# offline model) beside a bare axum handler answering the same JSON, in one run, then
# time to first byte / first token of POST /api/v1/chats/stream beside the offline
# model's own first delta. Figures are recorded in BENCHMARKS.md ("HTTP server").
#
#   benches/load/run.sh            # DURATION=20s CONNECTIONS=64 THREADS=1 SSE_RUNS=500
#
# On a 2-core machine the server under test is pinned to CPU 0 and wrk (and the SSE
# driver) to CPU 1 (SERVER_CPUS / CLIENT_CPUS), so client and server do not compete.
# Needs wrk (Debian: apt-get install wrk) and taskset.
set -euo pipefail

DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
SSE_RUNS=${SSE_RUNS:-500}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
script="$root/benches/load/chats.lua"
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --example server >&2
cargo build --release -p bedrock-chat-benches --example bare_axum --example sse_ttfb >&2
bin="$root/target/release/examples"

# start NAME CMD...: starts CMD pinned to SERVER_CPUS, waits for its `listening on` line,
# sets $pid and $url.
start() {
    local name=$1
    shift
    RUST_LOG=warn taskset -c "$SERVER_CPUS" "$@" --bind 127.0.0.1:0 >"$work/$name.out" 2>"$work/$name.err" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        url=$(sed -n 's#^listening on \(http://.*\)$#\1#p' "$work/$name.out")
        [ -n "$url" ] && return 0
        sleep 0.1
    done
    echo "$name did not start:" >&2
    cat "$work/$name.err" >&2
    exit 1
}

# CPU seconds (user + system) the process has used.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

mem() {
    awk '/^VmRSS|^VmHWM/ { printf "%s %s kB  ", $1, $2 }' "/proc/$1/status"
}

# bench NAME: drives $url with wrk; prints wrk's report and the server's CPU and memory.
bench() {
    local name=$1
    echo "== $name ($url, pid $pid)"
    echo "memory before: $(mem "$pid")"
    taskset -c "$CLIENT_CPUS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$script" "$url" >/dev/null
    local cpu0 cpu1
    cpu0=$(cpu_seconds "$pid")
    echo "+ taskset -c $CLIENT_CPUS wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s benches/load/chats.lua $url"
    taskset -c "$CLIENT_CPUS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$script" "$url" | tee "$work/$name.wrk"
    cpu1=$(cpu_seconds "$pid")
    echo "memory after:  $(mem "$pid")"
    if grep -q "Non-2xx" "$work/$name.wrk"; then
        echo "error: $name answered non-2xx responses" >&2
        exit 1
    fi
    local requests
    requests=$(awk '/requests in/ { print $1 }' "$work/$name.wrk")
    awk -v c0="$cpu0" -v c1="$cpu1" -v n="$requests" \
        'BEGIN { printf "server CPU: %.2f s for %d requests = %.1f µs per request\n", c1 - c0, n, (c1 - c0) * 1e6 / n }'
}

start server "$bin/server" --store memory --rate-limit 1000000000/min --log-format json
server_pid=$pid server_url=$url
bench server

start bare "$bin/bare_axum"
bare_pid=$pid bare_url=$url
pid=$bare_pid url=$bare_url
bench bare

rps() { awk '/^Requests\/sec/ { print $2 }' "$work/$1.wrk"; }
echo "== ratio server / bare: $(awk -v s="$(rps server)" -v b="$(rps bare)" 'BEGIN { printf "%.2fx (%s / %s requests/s)", s / b, s, b }')"

echo "== SSE: $SSE_RUNS streamed sends each, one at a time, a fresh connection per send"
echo "+ taskset -c $CLIENT_CPUS target/release/examples/sse_ttfb $SSE_RUNS server=$server_url bare=$bare_url"
taskset -c "$CLIENT_CPUS" "$bin/sse_ttfb" "$SSE_RUNS" "server=$server_url" "bare_axum=$bare_url"
echo "server memory at the end: $(mem "$server_pid")"
