#!/usr/bin/env bash
# Load benchmark of the example server's POST /api/v1/chats (memory store and limiter,
# offline model) beside a bare axum handler answering the same JSON, in one run, then
# time to first byte / first token of POST /api/v1/chats/stream beside the offline
# model's own first delta. Figures are recorded in BENCHMARKS.md ("HTTP server").
#
#   benches/load/run.sh            # DURATION=20s CONNECTIONS=64 THREADS=1 SSE_RUNS=500
#
# The load is CONNECTIONS keep-alive connections sending as BROWSERS simulated browsers
# (default: one per connection), each with its own identity cookie and conversation,
# made before the timed run (see benches/load/chats.lua). BROWSERS=0 sends every request
# as a first visit instead: no cookie, no chat id, a new user and conversation each.
#
# On a 2-core machine the server under test is pinned to CPU 0 and wrk (and the SSE
# driver) to CPU 1 (SERVER_CPUS / CLIENT_CPUS), so client and server do not compete.
# Needs wrk (Debian: apt-get install wrk) and taskset.
set -euo pipefail

DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-64}
BROWSERS=${BROWSERS:-$CONNECTIONS}
THREADS=${THREADS:-1}
SSE_RUNS=${SSE_RUNS:-500}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}

# The tools it drives, checked before the release build rather than after it.
for tool in wrk taskset curl jq; do
    if ! command -v "$tool" >/dev/null; then
        echo "run.sh: $tool is not installed (Debian: apt-get install wrk util-linux curl jq)" >&2
        exit 2
    fi
done

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
    # The file appears when the background shell opens it: until then, no URL yet.
    for _ in $(seq 100); do
        url=$(sed -n 's#^listening on \(http://.*\)$#\1#p' "$work/$name.out" 2>/dev/null || true)
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

# browsers N: makes N browsers on the server at $url, each by a first send without a
# cookie, as a browser's first visit; writes their `COOKIE CHAT_ID` lines to
# $work/browsers for chats.lua.
browsers() {
    : >"$work/browsers"
    local i answer cookie chat_id
    for i in $(seq "$1"); do
        answer=$(curl -sS -D "$work/headers" -H 'Content-Type: application/json' \
            -d '{"message":"Hello"}' "$url/api/v1/chats")
        cookie=$(sed -n 's/^set-cookie: bedrock_chat_id=\([0-9a-f]\{32\}\);.*/\1/ip' "$work/headers")
        chat_id=$(jq -r .chat_id <<<"$answer")
        if [ -z "$cookie" ] || [ "$chat_id" = null ]; then
            echo "browser $i: no identity cookie or chat id in the answer: $answer" >&2
            exit 1
        fi
        echo "$cookie $chat_id" >>"$work/browsers"
    done
}

# bench NAME: drives $url with wrk; prints wrk's report and the server's CPU and memory.
bench() {
    local name=$1
    echo "== $name ($url, pid $pid)"
    echo "memory before: $(mem "$pid")"
    taskset -c "$CLIENT_CPUS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$script" "$url" >/dev/null
    local cpu0 cpu1
    cpu0=$(cpu_seconds "$pid")
    echo "+ BROWSERS=$BROWSERS taskset -c $CLIENT_CPUS wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s benches/load/chats.lua $url"
    (
        taskset -c "$CLIENT_CPUS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$script" "$url" >"$work/$name.wrk"
        times >"$work/$name.times"
    )
    cat "$work/$name.wrk"
    cpu1=$(cpu_seconds "$pid")
    # wrk's own CPU (the subshell's children): near DURATION means the client, not the
    # server, was the limit.
    awk 'NR == 2 { gsub(/[ms]/, " "); printf "client (wrk) CPU: %.2f s user + %.2f s system\n", $1 * 60 + $2, $3 * 60 + $4 }' "$work/$name.times"
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
browsers "$BROWSERS"
if [ "$BROWSERS" -gt 0 ]; then export BROWSERS="$work/browsers"; else export BROWSERS=; fi
echo "== $(wc -l <"$work/browsers") browsers, each with its own identity cookie and conversation"
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
