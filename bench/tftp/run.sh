#!/usr/bin/env bash
# TFTP benchmark: tftpd-hpa against Centra PXE's TFTP server, same files, same clients, across two
# network namespaces. Needs root. Installs the peers it needs (tftpd-hpa, curl, atftp, ipxe) with
# apt when missing; tftpd-hpa's own service is stopped and the server is run by hand in a namespace.
# Options pass through: --repeat N, --windowsize N, --clients 1,50, --files undionly.kpxe,1m.bin,30m.bin
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v in.tftpd >/dev/null || need+=(tftpd-hpa)
command -v curl >/dev/null || need+=(curl)
command -v atftp >/dev/null || need+=(atftp)
[ -e /usr/lib/ipxe/undionly.kpxe ] || need+=(ipxe)
if ((${#need[@]})); then
  echo "bench: installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts tftpd-hpa on install; the benchmark runs its own copy inside the bench namespace.
if command -v systemctl >/dev/null && systemctl is-active --quiet tftpd-hpa 2>/dev/null; then systemctl stop tftpd-hpa; fi
if [ -x /etc/init.d/tftpd-hpa ]; then /etc/init.d/tftpd-hpa stop >/dev/null 2>&1 || true; fi

exec node --import tsx bench/tftp/bench.ts "$@"
