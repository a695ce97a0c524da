#!/usr/bin/env bash
# HTTP download benchmark (issue 2): Debian's nginx-light (sendfile on) vs Centra PXE's HTTP boot
# service, same files (an 8 MB kernel, a 500 MB image), same client (wrk), 1 and 50 downloads at
# once, on loopback. Prints throughput side by side with the ratio, each server's CPU per GB sent, and our
# RSS during the 50 run.
#
#   bench/http/run.sh            # as root on Debian 12 (installs nginx-light and wrk if missing)
#   DURATION=20 bench/http/run.sh
#   ROUNDS=3 DURATION=4 bench/http/run.sh   # as a reviewer ran it
#
# Goal: ours >= 0.9 x nginx and >= 1.25 GB/s (10 GbE line rate).
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-5}
# The two servers take turns, ROUNDS times per cell, and the median counts: on a shared machine a
# single run mostly measures whatever else was running at that moment.
ROUNDS=${ROUNDS:-5}
# Free loopback ports, picked now: this machine is shared and fixed ports collide.
free_port() { node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'; }
NGINX_PORT=${NGINX_PORT:-$(free_port)}
OURS_PORT=${OURS_PORT:-$(free_port)}
IMAGE_MB=${IMAGE_MB:-500}
KERNEL_MB=${KERNEL_MB:-8}

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
if ((${#need[@]})); then
  echo "bench: installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The package starts its own nginx on port 80; stop that one, we run our own instance.
  if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then systemctl stop nginx; fi
  if [ -s /run/nginx.pid ]; then /usr/sbin/nginx -s quit 2>/dev/null || true; fi
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

WORK=$(mktemp -d /tmp/centra-bench-http.XXXXXX)
chmod 755 "$WORK" # nginx workers run as www-data
STATE="$WORK/state"
NGINX_PID=""
OURS_PID=""
SAMPLER_PID=""
cleanup() {
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
  [ -n "$OURS_PID" ] && kill "$OURS_PID" 2>/dev/null || true
  [ -n "$NGINX_PID" ] && kill -QUIT "$NGINX_PID" 2>/dev/null || true
  sleep 0.3
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "bench: writing a ${KERNEL_MB} MB kernel and a ${IMAGE_MB} MB image under $STATE"
mkdir -p "$STATE/images/bench/1" "$STATE/ipxe" "$WORK/nginx/logs"
head -c $((KERNEL_MB * 1024 * 1024)) /dev/urandom >"$STATE/images/bench/1/kernel"
head -c $((IMAGE_MB * 1024 * 1024)) /dev/urandom >"$STATE/images/bench/1/initrd"
ln -s 1 "$STATE/images/bench/current"
# Both servers read from the page cache: warm it once so neither pays for the disk.
cat "$STATE/images/bench/1/kernel" "$STATE/images/bench/1/initrd" >/dev/null

# nginx as Debian ships it for static files: sendfile on, default worker count, no access log.
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
daemon off;
events { worker_connections 1024; }
http {
  sendfile on;
  tcp_nopush on;
  access_log off;
  keepalive_requests 100000;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $STATE;
    location /boot/ { alias $STATE/; }
  }
}
CONF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/logs/error.log" &
NGINX_PID=$!

node --import tsx bench/http/serve-ours.ts "$STATE" "$OURS_PORT" >"$WORK/ours.out" 2>&1 &
OURS_PID=$!

for _ in $(seq 100); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$NGINX_PORT/boot/images/bench/1/kernel" 2>/dev/null &&
    curl -fsS -o /dev/null "http://127.0.0.1:$OURS_PORT/boot/images/bench/1/kernel" 2>/dev/null; then break; fi
  sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$OURS_PORT/boot/images/bench/1/kernel" || { cat "$WORK/ours.out"; exit 1; }

# Same bytes from both, or the comparison means nothing.
for f in kernel; do
  a=$(curl -fsS "http://127.0.0.1:$NGINX_PORT/boot/images/bench/1/$f" | sha256sum)
  b=$(curl -fsS "http://127.0.0.1:$OURS_PORT/boot/images/bench/1/$f" | sha256sum)
  [ "$a" = "$b" ] || { echo "bench: $f differs between nginx and ours" >&2; exit 1; }
done

# wrk's "Transfer/sec" line → bytes per second.
run_wrk() { # port path connections
  local threads=$(($3 < 2 ? 1 : 2))
  wrk -t "$threads" -c "$3" -d "${DURATION}s" --timeout 60s "http://127.0.0.1:$1$2" | awk '
    /Transfer\/sec/ { v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+$/, "", v);
      m = (u=="GB") ? 1024^3 : (u=="MB") ? 1024^2 : (u=="KB") ? 1024 : 1; printf "%.0f\n", v*m }'
}

sample_rss() { # pid → prints "min max" in MB on stop
  local pid=$1 min=0 max=0
  trap 'echo "$min $max"; exit 0' TERM
  while :; do
    local kb
    kb=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    local mb=$((kb / 1024))
    if [ "$min" -eq 0 ] || [ "$mb" -lt "$min" ]; then min=$mb; fi
    if [ "$mb" -gt "$max" ]; then max=$mb; fi
    sleep 0.2
  done
}

rss_of() { awk '/VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$1/status"; }
OURS_NODE_PID=$(pgrep -P "$OURS_PID" node || echo "$OURS_PID")

# Server CPU (user + system ticks of the processes that serve) per GB sent: on a shared machine the
# throughput mostly measures the neighbours, while the CPU a byte costs each server is its own.
NGINX_WORKERS=$(pgrep -P "$NGINX_PID" | tr '\n' ' ' || true)
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
HZ=$(getconf CLK_TCK)
# Ticks → CPU seconds per GB, given the per-round rates (bytes/s) in $2.
cpu_per_gb() { awk -v t="$1" -v hz="$HZ" -v d="$DURATION" '{ b += $1 * d } END { printf "%.2f", (b > 0) ? (t / hz) / (b / 1073741824) : 0 }' "$2"; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

printf '\n%-8s %-5s %14s %14s %7s %11s %11s\n' file conns "nginx MB/s" "ours MB/s" ratio "nginx s/GB" "ours s/GB"
results=()
for file in kernel initrd; do
  for conns in 1 50; do
    path="/boot/images/bench/1/$file"
    : >"$WORK/n" ; : >"$WORK/o"
    nginx_ticks=0; ours_ticks=0
    if [ "$conns" -eq 50 ]; then
      rss_before=$(rss_of "$OURS_NODE_PID"); rss_low=""; rss_high=0
    fi
    for _ in $(seq "$ROUNDS"); do
      before=$(cpu_ticks $NGINX_WORKERS)
      run_wrk "$NGINX_PORT" "$path" "$conns" >>"$WORK/n"
      nginx_ticks=$((nginx_ticks + $(cpu_ticks $NGINX_WORKERS) - before))
      if [ "$conns" -eq 50 ]; then
        sample_rss "$OURS_NODE_PID" >"$WORK/rss.$file" &
        SAMPLER_PID=$!
      fi
      before=$(cpu_ticks "$OURS_NODE_PID")
      run_wrk "$OURS_PORT" "$path" "$conns" >>"$WORK/o"
      ours_ticks=$((ours_ticks + $(cpu_ticks "$OURS_NODE_PID") - before))
      if [ "$conns" -eq 50 ]; then
        kill -TERM "$SAMPLER_PID"; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""
        read -r rss_min rss_max <"$WORK/rss.$file"
        if [ -z "$rss_low" ] || [ "$rss_min" -lt "$rss_low" ]; then rss_low=$rss_min; fi
        if [ "$rss_max" -gt "$rss_high" ]; then rss_high=$rss_max; fi
      fi
    done
    if [ "$conns" -eq 50 ]; then
      results+=("$file x50: our RSS ${rss_before} MB before, ${rss_low}-${rss_high} MB (min-max, sampled every 0.2 s) while 50 downloads ran")
    fi
    n=$(median <"$WORK/n"); o=$(median <"$WORK/o")
    printf '%-8s %-5s %14.0f %14.0f %7.2f %11s %11s   (nginx: %s; ours: %s)\n' "$file" "$conns" "$((n / 1048576))" "$((o / 1048576))" \
      "$(awk -v a="$o" -v b="$n" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')" \
      "$(cpu_per_gb "$nginx_ticks" "$WORK/n")" "$(cpu_per_gb "$ours_ticks" "$WORK/o")" \
      "$(awk '{ printf "%s%d", (NR > 1 ? " " : ""), $1 / 1048576 }' "$WORK/n")" "$(awk '{ printf "%s%d", (NR > 1 ? " " : ""), $1 / 1048576 }' "$WORK/o")"
  done
done
echo
for r in "${results[@]}"; do echo "$r"; done
echo "(${IMAGE_MB} MB 'initrd' = the large image; $(nproc) CPUs, load before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg); wrk ${DURATION}s x ${ROUNDS} rounds per server per cell, medians; s/GB: server CPU seconds per GB sent, all rounds; goal: ratio >= 0.90 and ours >= 1192 MB/s = 1.25 GB/s)"
