#!/usr/bin/env bash
# A 3-node Parley cluster on this machine, for trying cluster mode out:
# three nats-server processes with JetStream, routed to each other, and three
# `parley serve` nodes sharing one PostgreSQL database, each on its own ports.
#
#   PARLEY_DATABASE=postgres://parley:PASSWORD@127.0.0.1/parley contrib/cluster/local.sh [DIR]
#
# DIR (default ./parley-cluster) holds each NATS server's store, each node's data
# directory and configuration, and every process's log; running the script again on it
# resumes the same cluster. Ctrl-C (SIGINT) or SIGTERM stops everything; so does any
# one process exiting on its own. Everything listens on 127.0.0.1 only.
#
# Environment:
#   PARLEY_DATABASE  the PostgreSQL URL every node uses (required; see below to make one)
#   PARLEY           the parley binary (default: `parley` on the PATH, else this
#                    repository's target/release/parley or target/debug/parley)
#   NATS_SERVER      the nats-server binary (default: nats-server on the PATH or in /usr/sbin)
#
# Ports, for node (and NATS server) i = 1, 2, 3:
#   parley line i7777, native i7778, irc i6667, web i8080
#   NATS clients i4222, routes i6222, monitoring i8222
set -euo pipefail

dir=${1:-./parley-cluster}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

die() {
    echo "local.sh: $*" >&2
    exit 1
}

if [[ -z ${PARLEY_DATABASE:-} ]]; then
    cat >&2 <<'EOF'
local.sh: PARLEY_DATABASE is not set: the nodes share one PostgreSQL database.
Make one (as a user that may administer PostgreSQL), then run the script again:

  sudo -u postgres createuser --pwprompt parley
  sudo -u postgres createdb --owner parley parley
  export PARLEY_DATABASE=postgres://parley:PASSWORD@127.0.0.1:5432/parley

The URL is written into each node's configuration file (mode 600), not passed on the
command line, so other users cannot read the password in the process list.
EOF
    exit 1
fi

parley=${PARLEY:-}
if [[ -z $parley ]]; then
    for candidate in "$(command -v parley || true)" "$repo/target/release/parley" "$repo/target/debug/parley"; do
        if [[ -n $candidate && -x $candidate ]]; then
            parley=$candidate
            break
        fi
    done
fi
[[ -n $parley && -x $parley ]] || die "no parley binary: set PARLEY, or cargo build --release -p parley"

nats=${NATS_SERVER:-}
if [[ -z $nats ]]; then
    for candidate in "$(command -v nats-server || true)" /usr/sbin/nats-server; do
        if [[ -n $candidate && -x $candidate ]]; then
            nats=$candidate
            break
        fi
    done
fi
[[ -n $nats && -x $nats ]] || die "no nats-server: apt-get install nats-server, or set NATS_SERVER"
command -v curl >/dev/null || die "curl is needed to ask NATS whether JetStream is ready"

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pids=()

stop() {
    trap - INT TERM EXIT
    if ((${#pids[@]})); then
        echo "stopping the cluster..." >&2
        # The nodes first (they tell their clients goodbye), then NATS.
        for pid in "${pids[@]:3}" "${pids[@]:0:3}"; do
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        done
    fi
    echo "stopped; logs and data are in $dir" >&2
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

routes() {
    local i=$1 j out=()
    for j in 1 2 3; do
        ((j == i)) || out+=("nats-route://127.0.0.1:${j}6222")
    done
    local IFS=,
    echo "${out[*]}"
}

for i in 1 2 3; do
    mkdir -p "$dir/nats-$i"
    cat >"$dir/nats-$i/nats.conf" <<EOF
# NATS server $i of the local Parley cluster (written by contrib/cluster/local.sh).
server_name: nats-$i
listen: 127.0.0.1:${i}4222
http: 127.0.0.1:${i}8222
jetstream {
  store_dir: "$dir/nats-$i/store"
}
cluster {
  name: parley
  listen: 127.0.0.1:${i}6222
  routes: [$(routes "$i")]
}
EOF
    "$nats" --config "$dir/nats-$i/nats.conf" >"$dir/nats-$i/log" 2>&1 &
    pids+=($!)
done

# JetStream takes a few seconds to elect its meta leader; until then a node cannot
# open the log.
echo "waiting for JetStream..." >&2
for i in 1 2 3; do
    for attempt in $(seq 1 60); do
        kill -0 "${pids[$((i - 1))]}" 2>/dev/null || die "nats-server $i exited: see $dir/nats-$i/log"
        curl -fsS "http://127.0.0.1:${i}8222/healthz" >/dev/null 2>&1 && break
        ((attempt < 60)) || die "JetStream on NATS server $i is not ready after 30 s: see $dir/nats-$i/log"
        sleep 0.5
    done
done

for i in 1 2 3; do
    node="$dir/node-$i"
    mkdir -p "$node"
    # Node i lists NATS server i first; any one will do.
    servers="\"nats://127.0.0.1:${i}4222\""
    for j in 1 2 3; do
        ((j == i)) || servers+=", \"nats://127.0.0.1:${j}4222\""
    done
    (
        umask 077
        cat >"$node/parley.toml" <<EOF
# Node $i of the local Parley cluster (written by contrib/cluster/local.sh).
data_dir = "$node"

[limits]
# Trying it out: no flood control between you and your own scripts.
flood_rate_per_sec = 0

[database]
url = "$PARLEY_DATABASE"

[cluster]
servers = [$servers]
node = "node-$i"
replicas = 3
# Where clients of a node that goes away can go instead.
nodes = ["127.0.0.1:17778", "127.0.0.1:27778", "127.0.0.1:37778"]
EOF
    )
    "$parley" serve --config "$node/parley.toml" \
        --listen "line=127.0.0.1:${i}7777" --listen "native=127.0.0.1:${i}7778" \
        --listen "irc=127.0.0.1:${i}6667" --listen "web=127.0.0.1:${i}8080" \
        >"$node/log" 2>&1 &
    pids+=($!)
    for attempt in $(seq 1 60); do
        kill -0 "${pids[-1]}" 2>/dev/null || die "node $i exited: see $node/log"
        grep -qs '^listening native=' "$node/log" && break
        ((attempt < 60)) || die "node $i is not listening after 30 s: see $node/log"
        sleep 0.5
    done
done

cat <<EOF

A 3-node Parley cluster is running (data and logs in $dir).

  node    native (parley chat)   line (nc)          IRC                web
  node-1  127.0.0.1:17778        127.0.0.1:17777    127.0.0.1:16667    http://127.0.0.1:18080/
  node-2  127.0.0.1:27778        127.0.0.1:27777    127.0.0.1:26667    http://127.0.0.1:28080/
  node-3  127.0.0.1:37778        127.0.0.1:37777    127.0.0.1:36667    http://127.0.0.1:38080/

Try: $parley chat --plain 127.0.0.1:17778    and, in another terminal,
     $parley chat --plain 127.0.0.1:37778
NATS: nats://127.0.0.1:14222, :24222, :34222 (monitoring on :18222, :28222, :38222).
Ctrl-C stops everything.
EOF

# Until a signal, or until any process exits on its own (then the rest are stopped).
set +e
wait -n "${pids[@]}"
status=$?
echo "local.sh: a process of the cluster exited ($status); see the logs in $dir" >&2
exit 1
