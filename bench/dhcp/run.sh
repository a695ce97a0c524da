#!/usr/bin/env bash
# DHCP benchmark (issue 3): perfdhcp (1000 simulated clients, full DORA) against Kea 2.2
# (memfile, persist: true), dnsmasq and Centra PXE, each alone in the same pair of network
# namespaces, one after the other; and the PostgreSQL row: Kea with its PostgreSQL lease backend
# (kea-pg) against ours on PostgreSQL (centra-pg), both on one throwaway cluster started here.
# Kea runs twice per backend: single-threaded (kea, kea-pg) and with its multi-threading on
# (kea-mt, kea-pg-mt: 2 threads, the stronger peer, issue 12).
# Prints DORA/s per server (the median of ROUNDS runs at each rate, the best rate's median) and our
# ratios to each Kea. Not a test: run by hand, as root.
#
#   bench/dhcp/run.sh                 # default rates 4000 8000 12000 16000, 10 s each, 2 rounds
#   RATES="10000" SECONDS_PER_RUN=20 bench/dhcp/run.sh
#   MODE=reviewer bench/dhcp/run.sh   # the issue's shape: perfdhcp -r 20000 -R 1000 -p 10, far past saturation
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
MODE=${MODE:-sweep}
case $MODE in
  # A reviewer offers one fixed rate well above what any of the servers sustains on 2 CPUs: what
  # counts is how many DORAs still complete, i.e. how the server degrades past saturation.
  reviewer) RATES=${RATES:-20000}; SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}; CLIENTS=${CLIENTS:-1000} ;;
  sweep) ;;
  *) echo "MODE is sweep (default) or reviewer" >&2; exit 2 ;;
esac
RATES=${RATES:-"4000 8000 12000 16000"}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CLIENTS=${CLIENTS:-1000}
# Each rate is run ROUNDS times per server (servers interleaved); the median counts, since the
# machine is shared and one run can lose its CPU to a neighbour.
ROUNDS=${ROUNDS:-2}
SERVERS=${SERVERS:-"kea kea-mt dnsmasq centra kea-pg kea-pg-mt centra-pg"}
# SYNC_PROBE=1 runs each server under strace and counts its fsync/fdatasync calls: who makes a
# lease durable before answering, and who does not (slows every server down; figures not comparable).
SYNC_PROBE=${SYNC_PROBE:-0}
# CPU_PROFILE_DIR=/some/dir writes a V8 CPU profile of each centra run there (node --cpu-prof).
CPU_PROFILE_DIR=${CPU_PROFILE_DIR:-}

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
case " $SERVERS " in *" kea-pg "*|*" kea-pg-mt "*|*" centra-pg "*)
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

# Kea's config: $1 its lease-database, $2 "mt" for its multi-threading as the issue words it
# (2 threads in the pool; Kea 2.2 supports it with memfile and PostgreSQL alike).
start_kea_with() {
  mkdir -p /run/kea "$WORK/kea"
  local threads='"multi-threading": { "enable-multi-threading": false },'
  [ "$2" = mt ] && threads='"multi-threading": { "enable-multi-threading": true, "thread-pool-size": 2 },'
  cat > "$WORK/kea/kea.json" <<JSON
{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "$SIF" ], "dhcp-socket-type": "udp" },
  "lease-database": $1,
  $threads
  "valid-lifetime": 3600,
  "subnet4": [ { "id": 1, "subnet": "10.231.0.0/16", "pools": [ { "pool": "10.231.1.0 - 10.231.250.255" } ],
                 "option-data": [ { "name": "routers", "data": "10.231.0.1" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "ERROR", "output_options": [ { "output": "$WORK/kea/kea.log" } ] } ]
} }
JSON
  KEA_PIDFILE_DIR=$WORK/kea KEA_LOCKFILE_DIR=none ip netns exec $SNS $(probe "$3") kea-dhcp4 -c "$WORK/kea/kea.json" > "$WORK/kea/stdout" 2>&1 &
  SERVER_PID=$!
}

kea_memfile() {
  mkdir -p "$WORK/kea"
  echo "{ \"type\": \"memfile\", \"persist\": true, \"name\": \"$WORK/kea/leases.csv\", \"lfc-interval\": 0 }"
}

kea_postgresql() {
  local db; db=$(new_database kea)
  # Kea's own schema, as its documentation says to create it.
  kea-admin db-init pgsql -u postgres -n "$db" -h "$PG_SOCKET" -P "$PG_PORT" >/dev/null 2>&1
  echo "{ \"type\": \"postgresql\", \"name\": \"$db\", \"host\": \"$PG_SOCKET\", \"port\": $PG_PORT, \"user\": \"postgres\" }"
}

start_kea() { start_kea_with "$(kea_memfile)" st kea; }
start_kea-mt() { start_kea_with "$(kea_memfile)" mt kea-mt; }
start_kea-pg() { start_kea_with "$(kea_postgresql)" st kea-pg; }
start_kea-pg-mt() { start_kea_with "$(kea_postgresql)" mt kea-pg-mt; }

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
  ip netns exec $SNS $(probe centra) env DHCP_LOG_LEVEL=error node ${CPU_PROFILE_DIR:+--cpu-prof --cpu-prof-dir="$CPU_PROFILE_DIR"} --import tsx "${CENTRA_REPO:-$REPO}/test/dhcp/run-server.ts" "$WORK/centra/config.json" "${1:-${CENTRA_DATABASE:-$WORK/centra/centra-pxe.db}}" > "$WORK/centra/stdout" 2>&1 &
  SERVER_PID=$!
}

# Row centra-base (add it to SERVERS, with BASE_REPO=/another/checkout): the same server from that tree (the
# commit before a change, its node_modules and build/ in place), for an A/B in one run.
start_centra-base() {
  [ -n "${BASE_REPO:-}" ] || { echo "centra-base needs BASE_REPO" >&2; exit 2; }
  CENTRA_REPO=$BASE_REPO start_centra
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

# UDP RcvbufErrors in the server's namespace, or the one named (/proc/net/snmp is per network namespace).
udp_receive_buffer_drops() {
  ip netns exec "${1:-$SNS}" awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 } else print $c }' /proc/net/snmp
}

declare -A BEST BEST_AT RUNS MEDIAN
echo "perfdhcp: $CLIENTS clients, full DORA, ${SECONDS_PER_RUN}s per rate, offered rates: $RATES, $ROUNDS round(s), mode $MODE" >&2
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start" >&2
for server in $SERVERS; do BEST[$server]=0; BEST_AT[$server]=-; done
# Servers take turns at each rate and round, so a neighbour's load on a shared machine hits all of them alike.
for rate in $RATES; do
  for round in $(seq 1 "$ROUNDS"); do
    for server in $SERVERS; do
      "start_$server"
      wait_port67
      rcvbuf_before=$(udp_receive_buffer_drops)
      client_rcvbuf_before=$(udp_receive_buffer_drops $CNS)
      cpu_before=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat" 2>/dev/null || echo 0)
      main_before=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/task/$SERVER_PID/stat" 2>/dev/null || echo 0)
      out=$(ip netns exec $CNS perfdhcp -4 -l $CIF -R "$CLIENTS" -r "$rate" -p "$SECONDS_PER_RUN" 10.231.0.1 2>&1 || true)
      # CPU seconds the server used during the run (all its threads; /proc is in clock ticks): what
      # a DORA costs, whatever share of the machine the neighbours left it.
      cpu_ticks=$(( $(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat" 2>/dev/null || echo 0) - cpu_before ))
      # Its main thread alone (Node's event loop, Kea's receiving thread): the one that saturates first.
      main_ticks=$(( $(awk '{print $14 + $15}' "/proc/$SERVER_PID/task/$SERVER_PID/stat" 2>/dev/null || echo 0) - main_before ))
      stop_server
      # Datagrams the kernel dropped because the server's socket buffer was full: the server did
      # not even read them, whatever they were (REQUESTs of clients mid-DORA included).
      kernel_drops=$(( $(udp_receive_buffer_drops) - rcvbuf_before ))
      # …and replies perfdhcp's own socket had no room for: counted as drops, though they were sent.
      client_drops=$(( $(udp_receive_buffer_drops $CNS) - client_rcvbuf_before ))
      extra=""
      if [ "${server#centra}" != "$server" ]; then
        extra=$(sed -n 's/^counters //p' "$WORK/centra/stdout" | node -e 'const c=JSON.parse(require("fs").readFileSync(0,"utf8")); process.stdout.write((c.commits ? ` (${c.commits} commits, ${(c.committedLeases/c.commits).toFixed(1)} leases each` : " (") + `, ${c.discoversShed ?? 0} DISCOVERs shed)`)' 2>/dev/null || true)
      fi
      achieved=$(printf '%s\n' "$out" | sed -n 's/^Rate: \([0-9.]*\) 4-way.*/\1/p' | head -1)
      cpu_per_dora=$(awk "BEGIN{a = ${achieved:-0} * $SECONDS_PER_RUN; if (a > 0) printf \"%.0f (main thread %.0f)\", $cpu_ticks / $(getconf CLK_TCK) * 1e6 / a, $main_ticks / $(getconf CLK_TCK) * 1e6 / a; else print \"-\"}")
      achieved=$(printf '%s\n' "$out" | sed -n 's/^Rate: \([0-9.]*\) 4-way.*/\1/p' | head -1)
      drops=$(printf '%s\n' "$out" | sed -n 's/^drops ratio: \([0-9.]*\).*/\1/p' | tr '\n' '/' | sed 's#/$##')
      nonunique=$(printf '%s\n' "$out" | sed -n 's/^non unique addresses: \([0-9]*\)/\1/p' | awk '{s+=$1} END{print s+0}')
      printf '  %-9s offered %6s/s  round %s  achieved %9s DORA/s  drops %s %%  non-unique %s  kernel drops %s (perfdhcp %s)  CPU %s µs/DORA  load %s%s\n' "$server" "$rate" "$round" "${achieved:-0}" "${drops:-?}" "$nonunique" "$kernel_drops" "$client_drops" "$cpu_per_dora" "$(cut -d' ' -f1 /proc/loadavg)" "$extra" >&2
      RUNS[$server]="${RUNS[$server]:-} ${achieved:-0}"
      if [ "$SYNC_PROBE" = 1 ]; then
        printf '  %-9s fsync/fdatasync calls during the run: %s\n' "$server" "$(cat "$WORK/$server.strace" 2>/dev/null | grep -c -E 'fsync|fdatasync')" >&2
        rm -f "$WORK/$server.strace"
      fi
      # Fresh lease files for every run, so each starts from an empty pool.
      rm -rf "$WORK/kea" "$WORK/dnsmasq" "$WORK/centra"
    done
  done
  # The median of this rate's rounds (the lower middle one for an even count: no run is credited
  # with more than it did).
  for server in $SERVERS; do
    median=$(printf '%s\n' ${RUNS[$server]} | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}')
    RUNS[$server]=""
    MEDIAN[$server,$rate]=$median
    if awk "BEGIN{exit !($median > ${BEST[$server]})}"; then BEST[$server]=$median; BEST_AT[$server]=$rate; fi
  done
done

# The peers each row is compared with: Kea on the same backend, single-threaded and multi-threaded.
ratio() {
  local peer=$2
  case " $SERVERS " in *" $peer "*) ;; *) echo "-"; return ;; esac
  [ "${BEST[$peer]:-0}" = 0 ] && { echo "-"; return; }
  awk "BEGIN{printf \"%.2f\", ${BEST[$1]} / ${BEST[$peer]}}"
}
echo
echo "median DORA/s per offered rate:"
printf '%-10s' server; for rate in $RATES; do printf ' %9s/s' "$rate"; done; echo
for server in $SERVERS; do
  printf '%-10s' "$server"; for rate in $RATES; do printf ' %11.0f' "${MEDIAN[$server,$rate]}"; done; echo
done
echo
echo "best rate's median:"
printf '%-10s %10s %10s %12s %12s\n' server "DORA/s" "(offered)" "vs Kea" "vs Kea-MT"
for server in $SERVERS; do
  case $server in
    *-pg*) st=kea-pg; mt=kea-pg-mt ;;
    *) st=kea; mt=kea-mt ;;
  esac
  printf '%-10s %10.0f %10s %12s %12s\n' "$server" "${BEST[$server]}" "${BEST_AT[$server]}" "$(ratio "$server" $st)" "$(ratio "$server" $mt)"
done
echo "(median of $ROUNDS run(s) per rate, the best rate's; -pg rows against Kea on PostgreSQL, the others against Kea's memfile)"
echo
echo "durability (SYNC_PROBE=1 counts it with strace): Kea's memfile and dnsmasq's lease file make no fsync at"
echo "all, a crash of the machine can lose acknowledged leases; centra commits each batch of leases to SQLite"
echo "(WAL, synchronous=FULL: one fsync per batch) before sending that batch's ACKs."
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
