import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { gzipSync } from "node:zlib";
import { CentraError } from "../errors.js";
import { encodeCpioNewc, type CpioEntry } from "./cpio.js";

/**
 * The lab image: the host's Debian kernel and a small busybox initramfs built on the spot. The
 * initramfs does what a provisioning installer does first — loads the NIC driver, takes an address by
 * DHCP, reads the `centra.*` parameters it was booted with — then calls back to the server over HTTP
 * and powers the machine off, so a lab VM (or an e2e test) ends by itself.
 */

/** Every line the lab init prints starts with this, so the progress reader can find it among kernel messages. */
export const LAB_MARKER = "centra-lab:";

/**
 * NIC drivers the lab machines may use: virtio-net (the default) and e1000 (what many real PXE ROMs
 * and older QEMU machine types present). Debian builds both as modules, so they go into the initrd
 * with their dependencies, in load order.
 */
export const LAB_NIC_MODULES = ["virtio_pci", "virtio_net", "e1000", "e1000e"] as const;

/** efivarfs (a module in Debian): the init reads the firmware's `SecureBoot` variable through it. */
const LAB_EXTRA_MODULES = ["efivarfs"] as const;

/** The EFI global variable GUID (UEFI 2.x §3.3): `SecureBoot` is 1 when the firmware enforces it. */
const SECURE_BOOT_VARIABLE = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

export interface LabImageSources {
  /** /boot/vmlinuz-<version> */
  kernel: string;
  kernelVersion: string;
  /** /lib/modules/<version> */
  modulesDir: string;
  /** A static busybox: the initrd has no libc. */
  busybox: string;
}

export class LabImageError extends CentraError {
  constructor(message: string) {
    super("LAB_IMAGE", message);
  }
}

/** The newest installed Debian kernel that has its modules installed beside it. */
export function findHostKernel(bootDir = "/boot", modulesRoot = "/lib/modules"): LabImageSources {
  return findKernel(bootDir, modulesRoot, findHostBusybox(), "install linux-image-amd64");
}

/** The host's static busybox: the x86 initrd's userland, and what decompresses modules for any image. */
export function findHostBusybox(): string {
  const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
  if (!busybox) throw new LabImageError("no static busybox: install busybox-static");
  return busybox;
}

/**
 * Where scripts/bootstrap unpacks Debian's arm64 kernel and busybox (`apt-get download`, never
 * installed: `dpkg-deb -x`, then `depmod -b` for modules.dep, which the package leaves to its
 * postinst). `CENTRA_PXE_ARM64_ROOT` points elsewhere.
 */
export const DEFAULT_ARM64_ROOT = "/var/cache/centra-pxe/arm64/root";

/** The unpacked root of Debian's arm64 packages in use: `CENTRA_PXE_ARM64_ROOT`, else the default. */
export function arm64Root(): string {
  return process.env.CENTRA_PXE_ARM64_ROOT || DEFAULT_ARM64_ROOT;
}

/** The ARM64 lab image's parts, from an unpacked root of Debian's arm64 packages. */
export function findArm64Image(root = arm64Root()): LabImageSources {
  const busybox = join(root, "bin", "busybox");
  const hint = `run scripts/bootstrap (it fetches Debian's arm64 linux-image and busybox-static into ${DEFAULT_ARM64_ROOT}), or set CENTRA_PXE_ARM64_ROOT`;
  if (!existsSync(busybox)) throw new LabImageError(`no arm64 busybox at ${busybox}: ${hint}`);
  return findKernel(join(root, "boot"), join(root, "lib", "modules"), busybox, hint);
}

function findKernel(bootDir: string, modulesRoot: string, busybox: string, hint: string): LabImageSources {
  const versions = existsSync(bootDir)
    ? readdirSync(bootDir)
        .filter((n) => n.startsWith("vmlinuz-"))
        .map((n) => n.slice("vmlinuz-".length))
        .filter((v) => existsSync(join(modulesRoot, v, "modules.dep")))
        .sort(compareKernelVersions)
    : [];
  const kernelVersion = versions.at(-1);
  if (!kernelVersion) throw new LabImageError(`no kernel with modules under ${bootDir} and ${modulesRoot}: ${hint}`);
  return {
    kernel: join(bootDir, `vmlinuz-${kernelVersion}`),
    kernelVersion,
    modulesDir: join(modulesRoot, kernelVersion),
    busybox,
  };
}

function compareKernelVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * The modules to load for `wanted`, dependencies first, from `modules.dep` (`path: dep dep …`).
 * A wanted module that is missing is skipped: a kernel may build a driver in, which is just as good.
 */
export function resolveModuleLoadOrder(modulesDep: string, wanted: readonly string[]): string[] {
  const deps = new Map<string, string[]>();
  const byName = new Map<string, string>();
  for (const line of modulesDep.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const path = line.slice(0, colon).trim();
    deps.set(
      path,
      line
        .slice(colon + 1)
        .trim()
        .split(/\s+/)
        .filter(Boolean),
    );
    // modules.dep names use '-' or '_' interchangeably with what modprobe accepts.
    byName.set(moduleName(path), path);
  }
  const order: string[] = [];
  const visit = (path: string) => {
    if (order.includes(path)) return;
    for (const d of deps.get(path) ?? []) visit(d);
    order.push(path);
  };
  for (const name of wanted) {
    const path = byName.get(name.replace(/-/g, "_"));
    if (path) visit(path);
  }
  return order;
}

function moduleName(path: string): string {
  return basename(path)
    .replace(/\.ko(\.(xz|zst|gz))?$/, "")
    .replace(/-/g, "_");
}

/** A module's bytes, uncompressed: busybox insmod loads plain .ko files only. `busybox` is the host's. */
function readModule(modulesDir: string, relative: string, busybox: string): Buffer {
  const full = join(modulesDir, relative);
  if (relative.endsWith(".ko")) return readFileSync(full);
  if (relative.endsWith(".ko.xz")) return execFileSync(busybox, ["xzcat", full], { maxBuffer: 64 << 20 });
  if (relative.endsWith(".ko.gz")) return execFileSync(busybox, ["zcat", full], { maxBuffer: 64 << 20 });
  if (relative.endsWith(".ko.zst")) return execFileSync("zstd", ["-dc", full], { maxBuffer: 64 << 20 });
  throw new LabImageError(`unknown module format: ${full}`);
}

/**
 * The init script. It runs as PID 1 from the initramfs; every line it prints to the console starts
 * with LAB_MARKER so the lab and the e2e test can follow it in the serial log.
 */
export function labInitScript(options: { serverAddress: string; modules: readonly string[] }): string {
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() { echo "${LAB_MARKER} $*"; }
say "initrd started, kernel $(uname -r)"
# The lab boots this image once with centra.lab.probe to learn whether KVM really runs guests here.
if grep -q centra.lab.probe /proc/cmdline; then say "probe ok"; poweroff -f; fi

for m in ${options.modules.map((m) => basename(m).replace(/\.(xz|zst|gz)$/, "")).join(" ")}; do
  insmod /lib/modules/$m 2>/dev/null
done

# What Secure Boot the firmware ran us under: efivarfs files are 4 bytes of attributes, then the
# value. The kernel's lockdown (Debian locks down under Secure Boot) says the same from its side.
if [ -d /sys/firmware/efi ]; then
  mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null
  # Read whole: efivarfs files cannot be seeked into (od -j reads the attributes instead).
  set -- $(od -An -tu1 /sys/firmware/efi/efivars/${SECURE_BOOT_VARIABLE} 2>/dev/null)
  say "efi secureboot \${5:-unknown}"
  mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
  [ -r /sys/kernel/security/lockdown ] && say "lockdown $(cat /sys/kernel/security/lockdown)"
fi

# The NIC appears once its driver probed; wait for it rather than racing the PCI scan.
nic=""
for i in $(seq 1 50); do
  for n in /sys/class/net/*; do
    n=\${n##*/}
    [ "$n" = lo ] && continue
    nic=$n; break
  done
  [ -n "$nic" ] && break
  sleep 0.2
done
if [ -z "$nic" ]; then say "FAILED no network interface"; poweroff -f; fi
mac=$(cat /sys/class/net/$nic/address)
say "nic $nic mac $mac"
ip link set lo up
ip link set $nic up

for p in $(cat /proc/cmdline); do
  case "$p" in
    centra.*) say "param $p" ;;
  esac
done

if udhcpc -i $nic -f -q -n -t 8 -T 3 -s /etc/udhcpc.script; then
  :
else
  say "FAILED no DHCP answer on $nic"; poweroff -f
fi

server="${options.serverAddress}"
token=""
for p in $(cat /proc/cmdline); do
  case "$p" in
    centra.api=*) api=\${p#centra.api=}; api=\${api#http://}; server=\${api%%/*} ;;
    centra.token=*) token=\${p#centra.token=} ;;
  esac
done
port=80
case "$server" in *:*) port=\${server##*:} ;; esac
path="/api/v1/nodes/callback?mac=$mac&token=$token"
say "callback POST http://$server$path"
# Plain HTTP/1.0 over nc: Debian's static busybox wget segfaults in this initrd (no NSS), nc does not.
# Any status line proves the request reached the server.
status=""
for attempt in 1 2 3 4 5; do
  answer=$(printf 'POST %s HTTP/1.0\\r\\nHost: %s\\r\\nContent-Type: application/x-www-form-urlencoded\\r\\nContent-Length: 0\\r\\n\\r\\n' "$path" "$server" | nc -w 10 "\${server%%:*}" "$port" 2>&1 | head -n 1)
  status=$(echo "$answer" | sed -n 's/^HTTP\\/1\\.[01] \\([0-9][0-9][0-9]\\).*/\\1/p')
  [ -n "$status" ] && break
  sleep 2
done
if [ -n "$status" ]; then say "callback answered HTTP $status"; else say "FAILED callback: $answer"; fi
say "done, powering off"
sync
poweroff -f
`;
}

/** busybox udhcpc calls this on each lease event; only `bound` matters for a one-shot lease. */
const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  bound|renew)
    ifconfig "$interface" "$ip" netmask "\${subnet:-255.255.255.0}" up
    [ -n "$router" ] && route add default gw "\${router%% *}" dev "$interface" 2>/dev/null
    echo "${LAB_MARKER} dhcp address $ip on $interface from \${serverid:-?}"
    ;;
esac
exit 0
`;

/** Build the gzip-compressed newc initramfs for `sources`. */
export function buildLabInitrd(sources: LabImageSources, serverAddress: string): Buffer {
  const dep = readFileSync(join(sources.modulesDir, "modules.dep"), "utf8");
  const modules = resolveModuleLoadOrder(dep, [...LAB_NIC_MODULES, ...LAB_EXTRA_MODULES]);
  if (modules.length === 0)
    throw new LabImageError(`none of ${LAB_NIC_MODULES.join(", ")} in ${sources.modulesDir}/modules.dep`);
  const entries: CpioEntry[] = [
    ...["bin", "dev", "etc", "proc", "sys", "tmp", "lib", "lib/modules"].map(
      (path): CpioEntry => ({ kind: "directory", path }),
    ),
    // The kernel opens /dev/console before devtmpfs is mounted; without the node, init has no stdout.
    { kind: "char-device", path: "dev/console", major: 5, minor: 1 },
    { kind: "file", path: "bin/busybox", data: readFileSync(sources.busybox), mode: 0o755 },
    { kind: "symlink", path: "bin/sh", target: "busybox" },
    { kind: "file", path: "init", data: Buffer.from(labInitScript({ serverAddress, modules })), mode: 0o755 },
    { kind: "file", path: "etc/udhcpc.script", data: Buffer.from(UDHCPC_SCRIPT), mode: 0o755 },
  ];
  for (const m of modules) {
    entries.push({
      kind: "file",
      path: `lib/modules/${basename(m).replace(/\.(xz|zst|gz)$/, "")}`,
      data: readModule(sources.modulesDir, m, findHostBusybox()),
    });
  }
  return gzipSync(encodeCpioNewc(entries), { level: 6 });
}
