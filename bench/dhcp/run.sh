#!/usr/bin/env bash
# DHCP benchmark (issue 3): perfdhcp (1000 simulated clients, full DORA) against Kea 2.2
# (memfile, persist: true), dnsmasq and Centra PXE, each alone in the same pair of network
# namespaces, one after the other; and the PostgreSQL row: Kea with its PostgreSQL lease backend
# (kea-pg) against ours on PostgreSQL (centra-pg), both on one throwaway cluster started here.
# Prints DORA/s per server (the best of the offered rates) and our ratios to Kea.
# Not a test: run by hand, as root.
#
#   bench/dhcp/run.sh                 # default rates 4000 8000 12000 16000, 10 s each
#   RATES="10000" SECONDS_PER_RUN=20 bench/dhcp/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
RATES=${RATES:-"4000 8000 12000 16000"}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CLIENTS=${CLIENTS:-1000}
SERVERS=${SERVERS:-"kea dnsmasq centra kea-pg centra-pg"}
# SYNC_PROBE=1 runs each server under strace and counts its fsync/fdatasync calls: who makes a
# lease durable before answering, and who does not (slows every server down; figures not comparable).
SYNC_PROBE=${SYNC_PROBE:-0}

[ "$(id -u)" = 0 ] || { echo "run as root (network namespaces)" >&2; exit 1; }

# Peers are installed here, not by scripts/bootstrap: only the benchmark needs them.
need=()
command -v kea-dhcp4 >/dev/null || need+=(kea-dhcp4-server)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v perfdhcp >/dev/null || need+=(kea-admin)
if ((${#need[@]})); then
  echo "installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Packages may start their service on install; the benchmark runs its own instances.
  for unit in kea-dhcp4-server kea-ctrl-agent kea-dhcp6-server kea-dhcp-ddns-server dnsmasq; do
    if command -v systemctl >/dev/null && systemctl list-unit-files "$unit.service" >/dev/null 2>&1; then
      systemctl stop "$unit" 2>/dev/null || true
      systemctl disable "$unit" 2>/dev/null || true
    fi
  done
fi
[ -f build/Release/udp_device_socket.node ] || npm run build:native >/dev/null

ID=$$
SNS=cpb-s$ID; CNS=cpb-c$ID; SIF=cbs$ID; CIF=cbc$ID
WORK=$(mktemp -d /tmp/centra-dhcp-bench.XXXXXX)
SERVER_PID=""
PG_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null || true
  [ -n "$PG_PID" ] && kill "$PG_PID" 2>/dev/null && wait "$PG_PID" 2>/dev/null || true
  for ns in $SNS $CNS; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add $SNS; ip netns add $CNS
ip link add $SIF type veth peer name $CIF
ip link set $SIF netns $SNS; ip link set $CIF netns $CNS
ip -n $SNS addr add 10.231.0.1/16 dev $SIF; ip -n $SNS link set $SIF up; ip -n $SNS link set lo up
ip -n $CNS addr add 10.231.0.2/16 dev $CIF; ip -n $CNS link set $CIF up; ip -n $CNS link set lo up

# One PostgreSQL cluster for both PostgreSQL rows (bench/dhcp/postgres.ts), a fresh database per run.
PG_SOCKET=""; PG_PORT=""
case " $SERVERS " in *" kea-pg "*|*" centra-pg "*)
  node --import tsx bench/dhcp/postgres.ts > "$WORK/pg.out" 2> "$WORK/pg.err" &
  PG_PID=$!
  for _ in $(seq 1 300); do [ -s "$WORK/pg.out" ] && break; sleep 0.2; done
  read -r PG_SOCKET PG_PORT < "$WORK/pg.out" || { cat "$WORK/pg.err" >&2; exit 1; }
  ;;
esac
# Called in $(…), a subshell: the name is unique by the clock, not by a counter.
new_database() {
  local name; name="$1_$(date +%s%N)"
  psql -q -h "$PG_SOCKET" -p "$PG_PORT" -U postgres -d postgres -c "CREATE DATABASE $name" >/dev/null
  echo "$name"
}

probe() {
  [ "$SYNC_PROBE" = 1 ] && echo "strace -f -qq -e trace=fsync,fdatasync -o $WORK/$1.strace"
  return 0
}

wait_port67() {
  for _ in $(seq 1 150); do
    ip netns exec $SNS ss -lun 2>/dev/null | grep -q ':67 ' && return 0
    sleep 0.2
  done
  echo "server did not listen on port 67" >&2; return 1
}

start_kea() {
  mkdir -p /run/kea "$WORK/kea"
  cat > "$WORK/kea/kea.json" <<JSON
{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "$SIF" ], "dhcp-socket-type": "udp" },
  "lease-database": { "type": "memfile", "persist": true, "name": "$WORK/kea/leases.csv", "lfc-interval": 0 },
  "valid-lifetime": 3600,
  "subnet4": [ { "id": 1, "subnet": "10.231.0.0/16", "pools": [ { "pool": "10.231.1.0 - 10.231.250.255" } ],
                 "option-data": [ { "name": "routers", "data": "10.231.0.1" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "ERROR", "output_options": [ { "output": "$WORK/kea/kea.log" } ] } ]
} }
JSON
  KEA_PIDFILE_DIR=$WORK/kea KEA_LOCKFILE_DIR=none ip netns exec $SNS $(probe kea) kea-dhcp4 -c "$WORK/kea/kea.json" > "$WORK/kea/stdout" 2>&1 &
  SERVER_PID=$!
}

start_kea-pg() {
  mkdir -p /run/kea "$WORK/kea"
  local db; db=$(new_database kea)
  # Kea's own schema, as its documentation says to create it.
  kea-admin db-init pgsql -u postgres -n "$db" -h "$PG_SOCKET" -P "$PG_PORT" >/dev/null 2>&1
  cat > "$WORK/kea/kea.json" <<JSON
{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "$SIF" ], "dhcp-socket-type": "udp" },
  "lease-database": { "type": "postgresql", "name": "$db", "host": "$PG_SOCKET", "port": $PG_PORT, "user": "postgres" },
  "valid-lifetime": 3600,
  "subnet4": [ { "id": 1, "subnet": "10.231.0.0/16", "pools": [ { "pool": "10.231.1.0 - 10.231.250.255" } ],
                 "option-data": [ { "name": "routers", "data": "10.231.0.1" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "ERROR", "output_options": [ { "output": "$WORK/kea/kea.log" } ] } ]
} }
JSON
  KEA_PIDFILE_DIR=$WORK/kea KEA_LOCKFILE_DIR=none ip netns exec $SNS $(probe kea-pg) kea-dhcp4 -c "$WORK/kea/kea.json" > "$WORK/kea/stdout" 2>&1 &
  SERVER_PID=$!
}

start_dnsmasq() {
  mkdir -p "$WORK/dnsmasq"
  # --no-ping: Kea and we do not probe before offering either; dhcp-lease-max defaults to 1000.
  ip netns exec $SNS $(probe dnsmasq) dnsmasq -d -C /dev/null --port=0 --interface=$SIF --bind-interfaces \
    --dhcp-range=10.231.1.0,10.231.250.255,255.255.0.0,1h --dhcp-option=3,10.231.0.1 --dhcp-lease-max=100000 \
    --dhcp-leasefile="$WORK/dnsmasq/leases" --no-ping --log-facility=/dev/null --pid-file="$WORK/dnsmasq/pid" > "$WORK/dnsmasq/stdout" 2>&1 &
  SERVER_PID=$!
}

start_centra() {
  mkdir -p "$WORK/centra/ipxe"
  cat > "$WORK/centra/config.json" <<JSON
{ "interface": "$SIF", "serverAddress": "10.231.0.1", "stateDir": "$WORK/centra",
  "dhcp": { "subnet": "10.231.0.0", "netmask": "255.255.0.0", "range": { "start": "10.231.1.0", "end": "10.231.250.255" },
            "router": "10.231.0.1", "leaseTime": "1h",
            "relays": ["10.231.0.2"], "budgets": { "newClients": { "rate": 100000, "burst": 100000 } } } }
JSON
  # Leases in SQLite, WAL, synchronous=FULL: every ACK waits for its batch's fsync.
  ip netns exec $SNS $(probe centra) env DHCP_LOG_LEVEL=error node --import tsx "$REPO/test/dhcp/run-server.ts" "$WORK/centra/config.json" "${1:-${CENTRA_DATABASE:-$WORK/centra/centra-pxe.db}}" > "$WORK/centra/stdout" 2>&1 &
  SERVER_PID=$!
}

start_centra-pg() {
  local db; db=$(new_database centra)
  # The same server as centra, its leases claimed in the shared PostgreSQL table (src/store/leases-pg.ts).
  start_centra "postgres://postgres@localhost:$PG_PORT/$db?host=$PG_SOCKET"
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

declare -A BEST BEST_AT
echo "perfdhcp: $CLIENTS clients, full DORA, ${SECONDS_PER_RUN}s per rate, offered rates: $RATES" >&2
for server in $SERVERS; do BEST[$server]=0; BEST_AT[$server]=-; done
# Servers take turns at each rate, so a neighbour's load on a shared machine hits all of them alike.
for rate in $RATES; do
  for server in $SERVERS; do
    "start_$server"
    wait_port67
    out=$(ip netns exec $CNS perfdhcp -4 -l $CIF -R "$CLIENTS" -r "$rate" -p "$SECONDS_PER_RUN" 10.231.0.1 2>&1 || true)
    stop_server
    commits=""
    if [ "$server" = centra ] || [ "$server" = centra-pg ]; then
      commits=$(sed -n 's/^counters //p' "$WORK/centra/stdout" | node -e 'const c=JSON.parse(require("fs").readFileSync(0,"utf8")); process.stdout.write(c.commits ? ` (${c.commits} fsynced commits, ${(c.committedLeases/c.commits).toFixed(1)} leases each)` : "")' 2>/dev/null || true)
    fi
    achieved=$(printf '%s\n' "$out" | sed -n 's/^Rate: \([0-9.]*\) 4-way.*/\1/p' | head -1)
    drops=$(printf '%s\n' "$out" | sed -n 's/^drops ratio: \([0-9.]*\).*/\1/p' | tr '\n' '/' | sed 's#/$##')
    nonunique=$(printf '%s\n' "$out" | sed -n 's/^non unique addresses: \([0-9]*\)/\1/p' | awk '{s+=$1} END{print s+0}')
    printf '  %-8s offered %6s/s  achieved %9s DORA/s  drops %s %%  non-unique %s%s\n' "$server" "$rate" "${achieved:-0}" "${drops:-?}" "$nonunique" "$commits" >&2
    if [ -n "$achieved" ] && awk "BEGIN{exit !($achieved > ${BEST[$server]})}"; then BEST[$server]=$achieved; BEST_AT[$server]=$rate; fi
    if [ "$SYNC_PROBE" = 1 ]; then
      printf '  %-8s fsync/fdatasync calls during the run: %s\n' "$server" "$(cat "$WORK/$server.strace" 2>/dev/null | grep -c -E 'fsync|fdatasync')" >&2
      rm -f "$WORK/$server.strace"
    fi
    # Fresh lease files for every run, so each starts from an empty pool.
    rm -rf "$WORK/kea" "$WORK/dnsmasq" "$WORK/centra"
  done
done

echo
printf '%-10s %14s %14s %10s\n' server "DORA/s" "(offered)" "vs Kea (memfile, or PostgreSQL for -pg)"
for server in $SERVERS; do
  ratio="-"
  # The PostgreSQL rows compare with Kea on PostgreSQL, the others with Kea's memfile.
  peer=kea; case $server in *-pg) peer=kea-pg ;; esac
  [ "${BEST[$peer]:-0}" != 0 ] && ratio=$(awk "BEGIN{printf \"%.2f\", ${BEST[$server]} / ${BEST[$peer]}}")
  printf '%-10s %14.0f %14s %10s\n' "$server" "${BEST[$server]}" "${BEST_AT[$server]}" "$ratio"
done
echo
echo "durability (SYNC_PROBE=1 counts it with strace): Kea's memfile and dnsmasq's lease file make no fsync at"
echo "all, a crash of the machine can lose acknowledged leases; centra commits each batch of leases to SQLite"
echo "(WAL, synchronous=FULL: one fsync per batch) before sending that batch's ACKs."
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
