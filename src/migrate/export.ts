import { kernelArguments, menuFor } from "../boot/resolver.js";
import { httpOrigin } from "../config/primitives.js";
import type { Config, DhcpSubnetConfig, NodeConfig, SelectorConfig } from "../config/schema.js";
import { UNNAMED_HOST_PREFIX } from "./import.js";

/**
 * `centra-pxe export`: the ISC stack's files from our config, for sites that keep dhcpd + atftpd +
 * nginx as a fallback. Each is what the seed ran: `dhcpd.conf` with host blocks, an nginx server
 * over the state directory, and a `boot.ipxe` choosing by `iseq ${mac}`. Pure: config in, text out.
 */

const HEADER = (what: string) => [
  `# ${what}, exported from the centra-pxe config by \`centra-pxe export\`.`,
  "# The fallback stack: ISC dhcpd (this dhcpd.conf), atftpd serving stateDir/ipxe, nginx (`export nginx`)",
  "# serving stateDir and the boot.ipxe of `export ipxe` (placed as stateDir/ipxe/boot.ipxe).",
];

/** The URL base machines fetch from: the HTTP part's address as DHCP announces it. */
function baseUrl(config: Config): string {
  return httpOrigin(config.serverAddress, config.http.port);
}

/** ISC dhcpd's `dhcpd.conf`; accepted by `dhcpd -t -cf FILE`. */
export function exportDhcpd(config: Config): string {
  const { dhcp } = config;
  const leaseSeconds = Math.max(1, Math.round(dhcp.leaseTime / 1000));
  const lines = [
    ...HEADER("dhcpd.conf for ISC dhcpd"),
    "",
    "# The client's architecture (RFC 4578 §2.1), to pick its bootloader below.",
    "option architecture-type code 93 = unsigned integer 16;",
    "ddns-update-style none;",
    "authoritative;",
    `default-lease-time ${leaseSeconds};`,
    `max-lease-time ${leaseSeconds};`,
    `next-server ${config.serverAddress};`,
    "",
    "# iPXE gets the boot script over HTTP; PXE firmware gets an iPXE build for its architecture by TFTP.",
    'if exists user-class and option user-class = "iPXE" {',
    `  filename "${baseUrl(config)}/boot/ipxe/boot.ipxe";`,
    "} elsif option architecture-type = 00:00 {",
    '  filename "undionly.kpxe";',
    "} elsif option architecture-type = 00:06 {",
    '  filename "ipxe-i386.efi";',
    "} else {",
    '  filename "ipxe.efi";',
    "}",
  ];
  for (const subnet of [dhcp, ...dhcp.subnets]) lines.push("", ...subnetBlock(subnet));
  const used = new Set<string>();
  for (const node of Object.values(config.nodes)) lines.push("", ...hostBlocks(node, used));
  return `${lines.join("\n")}\n`;
}

function subnetBlock(s: DhcpSubnetConfig): string[] {
  const lines = [`subnet ${s.subnet} netmask ${s.netmask} {`, `  range ${s.range.start} ${s.range.end};`];
  if (s.router) lines.push(`  option routers ${s.router};`);
  if (s.dns.length > 0) lines.push(`  option domain-name-servers ${s.dns.join(", ")};`);
  if (s.domain) lines.push(`  option domain-name ${JSON.stringify(s.domain)};`);
  if (s.broadcast) lines.push(`  option broadcast-address ${s.broadcast};`);
  lines.push("}");
  return lines;
}

/**
 * One `host` block per MAC (dhcpd keys hosts by one hardware address). The block is named after the
 * hostname; a node without one is named `mac-<hex>`, which `import` does not take for a hostname.
 * The node's other MACs get blocks of their own without the fixed address (dhcpd would hand it to
 * each NIC at once).
 */
function hostBlocks(node: NodeConfig, used: Set<string>): string[] {
  const lines: string[] = [];
  for (const [i, mac] of [node.mac, ...(node.macs ?? [])].entries()) {
    const unnamed = `${UNNAMED_HOST_PREFIX}${mac.replace(/:/g, "")}`;
    let name = i === 0 && node.hostname !== undefined ? node.hostname : unnamed;
    for (let n = 2; used.has(name); n++) name = `${node.hostname}-${n}`;
    used.add(name);
    lines.push(`host ${name} {`, `  hardware ethernet ${mac};`);
    if (i === 0 && node.ipAddress !== undefined) lines.push(`  fixed-address ${node.ipAddress};`);
    if (i === 0 && node.hostname !== undefined) lines.push(`  option host-name ${JSON.stringify(node.hostname)};`);
    lines.push("}");
  }
  return lines;
}

/** An nginx configuration serving the state directory at our paths; accepted by `nginx -t -c FILE`. */
export function exportNginx(config: Config): string {
  const state = config.stateDir.replace(/\/+$/, "");
  const listen =
    config.http.bindAddress === "0.0.0.0" ? `${config.http.port}` : `${config.http.bindAddress}:${config.http.port}`;
  const lines = [
    ...HEADER("nginx.conf"),
    "# Run it alone (`nginx -c FILE`) or copy the server block into a site.",
    "",
    "worker_processes 1;",
    "error_log stderr;",
    "pid /run/centra-pxe-nginx.pid;",
    "events {",
    "  worker_connections 1024;",
    "}",
    "http {",
    "  default_type application/octet-stream;",
    "  sendfile on;",
    "  access_log off;",
    "  server {",
    `    listen ${listen};`,
    "    # The iPXE scripts and bootloaders (atftpd serves the same directory over TFTP).",
    "    location /boot/ipxe/ {",
    `      alias ${state}/ipxe/;`,
    "    }",
    "    # stateDir/images/<name>/<version|current>/{kernel,initrd}: `current` is a symlink nginx follows.",
    "    location /boot/images/ {",
    `      alias ${state}/images/;`,
    "    }",
    "    # The seed's URLs for the nixos image.",
    "    location = /boot/nixos/bzImage {",
    `      alias ${state}/images/nixos/current/kernel;`,
    "    }",
    "    location = /boot/nixos/initrd {",
    `      alias ${state}/images/nixos/current/initrd;`,
    "    }",
    "    location = /health {",
    "      default_type text/plain;",
    '      return 200 "ok\\n";',
    "    }",
    "    location / {",
    "      return 404;",
    "    }",
    "  }",
    "}",
  ];
  return `${lines.join("\n")}\n`;
}

/** iPXE's view of a selector's arch (src/config/schema.ts SELECTOR_ARCHES): `${platform}` and `${buildarch}`. */
const ARCH_TESTS: Record<SelectorConfig["match"]["arch"] & string, string[]> = {
  bios: ["iseq ${platform} pcbios"],
  "efi-ia32": ["iseq ${platform} efi", "iseq ${buildarch} i386"],
  "efi-x64": ["iseq ${platform} efi", "iseq ${buildarch} x86_64"],
  "efi-arm32": ["iseq ${platform} efi", "iseq ${buildarch} arm32"],
  "efi-arm64": ["iseq ${platform} efi", "iseq ${buildarch} arm64"],
};

/**
 * The seed's `boot.ipxe`: one `iseq ${mac}` line per MAC with a profile, then the selectors iPXE can
 * test (arch, uuid, serial; labels live in our inventory only), then the menu; each profile boots
 * `stateDir/images/<image>/<version|current>`. The image's own arguments (manifest.json) are not
 * known here: add them to the profile's cmdline if the image needs them (NixOS: `init=`).
 */
export function exportIpxe(config: Config): string {
  const base = baseUrl(config);
  const menu = menuFor(config);
  const lines = [
    "#!ipxe",
    ...HEADER("boot.ipxe").map((l) => l.replace(/^# /, "# ")),
    "",
    `set boot-server ${base}`,
    "",
    "# Machines listed one by one (nodes in the config).",
  ];
  for (const node of Object.values(config.nodes)) {
    if (node.profile === undefined) continue;
    const hostname = node.hostname !== undefined ? ` && set hostname ${node.hostname}` : "";
    for (const mac of [node.mac, ...(node.macs ?? [])])
      lines.push(`iseq \${mac} ${mac} && set profile ${node.profile}${hostname} && goto boot ||`);
  }
  if (config.selectors.length > 0) lines.push("", "# Selectors (first match wins).");
  for (const selector of config.selectors) {
    const { match } = selector;
    if (match.labels !== undefined && Object.keys(match.labels).length > 0) {
      lines.push(`# not exported: a selector on labels (${selector.profile}); labels live in centra-pxe's inventory`);
      continue;
    }
    const tests = [
      ...(match.arch !== undefined ? ARCH_TESTS[match.arch] : []),
      ...(match.uuid !== undefined ? [`iseq \${uuid} ${match.uuid}`] : []),
      ...(match.serial !== undefined ? [`iseq \${serial} ${match.serial}`] : []),
    ];
    if (/\s/.test(match.serial ?? "")) {
      lines.push(`# not exported: a selector on a serial with blanks (${selector.profile})`);
      continue;
    }
    lines.push(`${tests.join(" && ")} && set profile ${selector.profile} && goto boot ||`);
  }
  lines.push(
    "",
    ":menu",
    `menu ${menu.title}`,
    ...menu.items.map((item, i) => `item ${item.profile} ${i + 1}. ${item.label}`),
    "item --gap --",
    "item localdisk Boot from local disk",
    "item shell iPXE shell",
    // Installing wipes disks: nobody at the console means the local disk, as the server's own menu does.
    `choose --timeout ${menu.timeoutMs} --default localdisk profile || goto shell`,
    "iseq ${profile} localdisk && goto localdisk ||",
    "iseq ${profile} shell && goto shell ||",
    "",
    ":boot",
  );
  for (const name of Object.keys(config.profiles)) lines.push(`iseq \${profile} ${name} && goto profile-${name} ||`);
  lines.push("echo Unknown profile ${profile}", "goto menu");
  for (const [name, profile] of Object.entries(config.profiles)) {
    const version = profile.version ?? "current";
    const cmdline = kernelArguments({
      imageArguments: "",
      profileName: name,
      console: config.boot.console,
      profileArguments: profile.cmdline,
      extraArguments: [],
    });
    lines.push(
      "",
      `:profile-${name}`,
      `set kernel-params ${cmdline}`,
      "isset ${hostname} && set kernel-params ${kernel-params} centra.hostname=${hostname} ||",
      // UEFI's EFI stub finds the initrd by the name given in initrd= (src/boot/ipxe.ts kernelCommandLine).
      `kernel \${boot-server}/boot/images/${profile.image}/${version}/kernel initrd=initrd \${kernel-params} || goto failed`,
      `initrd --name initrd \${boot-server}/boot/images/${profile.image}/${version}/initrd || goto failed`,
      "boot || goto failed",
    );
  }
  lines.push(
    "",
    ":localdisk",
    "exit",
    "",
    ":shell",
    "shell",
    "",
    ":failed",
    "echo Boot failed: ${errno}",
    "prompt --timeout 10000 Press any key for the shell, or wait to retry ||",
    "goto menu",
  );
  return `${lines.join("\n")}\n`;
}
