import { imageTree } from "../files/state-dir.js";
import type { LocalBootMethod } from "./boot-chain.js";
import type {
  BootSpec,
  ImageBoot,
  LocalDiskBoot,
  MachineIdentity,
  MenuBoot,
  NoBoot,
  Platform,
  UnavailableBoot,
} from "./spec.js";

/**
 * iPXE script rendering. Pure string building: the same spec gives the same bytes, so the scripts
 * are golden files (testdata/ipxe/). Every script ends in a boot, an explicit exit, or the iPXE
 * shell with a message: a machine must never sit silently on a black screen.
 */

/** Path of the per-machine script the entry script chains to. */
export const MACHINE_SCRIPT_PATH = "/boot/ipxe/machine.ipxe";
export const ENTRY_SCRIPT_PATH = "/boot/ipxe/boot.ipxe";

/** How many times a download is tried before giving up, and the pause between tries. */
export const DOWNLOAD_ATTEMPTS = 3;
export const RETRY_PAUSE_SECONDS = 5;

/**
 * The query iPXE fills in when it chains to the per-machine script.
 *
 * - `${netX/mac}` rather than `${mac}`: on a machine with several NICs an unscoped `${mac}` is the
 *   first NIC iPXE probed, not the one that booted; `netX` is the most recently opened device,
 *   which is the one that got DHCP, i.e. the MAC the operator registered.
 * - `:hexhyp` writes the MAC with `-` so no `:` needs escaping in the URL.
 * - `:uristring` percent-encodes strings (SMBIOS serials contain spaces and `&`).
 * - `${uuid}` stays in its own type: re-typing it as a string would print the 16 raw bytes, while
 *   its native form (hex digits and `-`) is already URL-safe.
 */
const MACHINE_QUERY =
  "mac=${netX/mac:hexhyp}&buildarch=${buildarch:uristring}&platform=${platform:uristring}&uuid=${uuid}&serial=${serial:uristring}";

/** The entry script (`/boot/ipxe/boot.ipxe`), the same for every machine. */
export function renderEntryScript(baseUrl: string): string {
  return script([
    "#!ipxe",
    "# Centra PXE entry script: hand the machine's identity to the server, which answers with",
    "# this machine's own script (its image, the menu, or its local disk).",
    "",
    ...retryingFetch({
      label: "machine",
      what: "the per-machine boot script",
      command: `chain --autofree --replace ${baseUrl}${MACHINE_SCRIPT_PATH}?${MACHINE_QUERY}`,
      next: "exit",
      notFound: "not-served",
    }),
    ...notServedBlock(),
    ...failureBlock(`chain ${baseUrl}${ENTRY_SCRIPT_PATH}`),
  ]);
}

/**
 * `localBoot: http-404`: the server has no script for this machine, on purpose. Not retried: iPXE
 * ends with an error, and the firmware goes on to its next boot option (the disk).
 */
function notServedBlock(): string[] {
  return [
    ":not-served",
    "echo Centra PXE: no boot script for this machine (HTTP 404): leaving for the firmware's next boot option",
    "exit 1",
    "",
  ];
}

/**
 * iPXE's error numbers for an HTTP 404 (`ENOENT_404` of net/tcp/httpcore.c: POSIX ENOENT 0x2d,
 * file httpcore 0x0c60, "Not found" 0x01), whose last byte is the platform's own code for
 * ENOENT: PXENV_STATUS_TFTP_FILE_NOT_FOUND (0x3b) on BIOS, EFI_NOT_FOUND folded to 0x8e on UEFI.
 * iPXE scripts have no arithmetic, so each is compared whole.
 */
export const IPXE_HTTP_NOT_FOUND_ERRORS = ["0x2d0c613b", "0x2d0c618e"] as const;

/**
 * The script embedded in our own iPXE builds (`centra-pxe ipxe build`, EMBED=). Debian's iPXE
 * first runs its autoboot: DHCPv4 and IPv6 router discovery on every NIC, then whatever the DHCP
 * answer names, then our entry script, which chains to the machine's own. Ours skips all of that:
 *
 * - The firmware's PXE stack has just leased an address to load this very iPXE. iPXE keeps that
 *   DHCPACK (core/cachedhcp.c: from the UEFI PXE base code's `Mode->DhcpAck` in ipxe.efi and
 *   snponly.efi, from the PXE ROM's cached info in undionly.kpxe) as the booting NIC's settings and
 *   opens that NIC, so `${netX/ip}` is already set: reusing it saves a second DORA and iPXE's wait
 *   for a ProxyDHCP offer (DHCP_DISC_PROXY_TIMEOUT_SEC, 2 s) after the first OFFER. Only the link is
 *   awaited (`iflinkwait`: ipxe.efi brings up its own driver, whose link comes up after a moment).
 * - Otherwise (an iPXE started from a disk or an HTTP boot URL, a firmware that keeps no DHCPACK)
 *   `ifconf --configurator dhcp` configures with DHCPv4 only: autoboot's IPv6 configurator waits
 *   ~17 s for a router advertisement an IPv4 provisioning network never sends.
 * - It chains straight to the machine's script with the identity the entry script would send
 *   (the same MACHINE_QUERY): one HTTP round trip fewer. The origin is fixed at build time, so the
 *   DHCP answer's filename is not needed and a build with our CA (TRUST=) uses `https://` from its
 *   first request.
 * - Every step retries; a machine that cannot reach us ends in the shell with the reason, never on
 *   a silent black screen.
 */
export function renderEmbeddedScript(options: { origin: string; build: string }): string {
  const machineUrl = `${options.origin}${MACHINE_SCRIPT_PATH}?${MACHINE_QUERY}`;
  return script([
    "#!ipxe",
    `# Centra PXE's own iPXE build ${options.build}: the firmware's address (or DHCPv4), then this machine's script.`,
    "",
    `echo Centra PXE iPXE build ${options.build} on \${platform}/\${buildarch}`,
    // The address the firmware leased (cachedhcp): wait for the link, not for another DHCP.
    "isset ${netX/ip} && iflinkwait --timeout 15000 ${netX/ifname} && goto machine ||",
    ...retryingFetch({
      label: "network",
      what: "a DHCPv4 address",
      doing: "asking for",
      command: "ifconf --configurator dhcp",
      next: "goto machine",
    }),
    ...retryingFetch({
      label: "machine",
      what: "the per-machine boot script",
      command: `chain --autofree --replace ${machineUrl}`,
      next: "exit",
      notFound: "not-served",
    }),
    ...notServedBlock(),
    // Not `&&`: iPXE would run the rest of an echo line after `&&` as a command.
    ...failureBlock(`ifconf --configurator dhcp, then chain ${options.origin}${ENTRY_SCRIPT_PATH}`),
  ]);
}

/** The per-machine script for a boot decision. */
export function renderMachineScript(spec: BootSpec, machine: MachineIdentity, baseUrl: string): string {
  switch (spec.kind) {
    case "image":
      return renderImageBoot(spec, machine, baseUrl);
    case "menu":
      return renderMenu(spec, machine, baseUrl);
    case "localdisk":
      return renderLocalDisk(spec, machine, baseUrl);
    case "none":
      return renderNoBoot(spec, machine);
    case "unavailable":
      return renderUnavailable(spec, machine, baseUrl);
  }
}

function renderImageBoot(spec: ImageBoot, machine: MachineIdentity, baseUrl: string): string {
  const who = spec.hostname !== undefined ? `${spec.hostname} (${machine.mac})` : machine.mac;
  return script([
    "#!ipxe",
    `# Centra PXE: ${who} boots profile ${spec.profile}, image ${imageTree(spec.image, spec.arch)} ${spec.version}, on ${machine.platform}.`,
    "",
    `echo Centra PXE: ${who}: profile ${spec.profile}, image ${imageTree(spec.image, spec.arch)} ${spec.version}`,
    ...retryingFetch({
      label: "kernel",
      what: "the kernel",
      command: `kernel ${spec.kernelUrl} ${kernelCommandLine(spec.cmdline, machine.platform)}`,
      next: "goto initrd",
    }),
    ...retryingFetch({
      label: "initrd",
      what: "the initrd",
      // Named, so the EFI stub can find it by the name given in `initrd=` (see kernelCommandLine).
      command: `initrd --name initrd ${spec.initrdUrl}`,
      next: "goto boot",
    }),
    ":boot",
    "set centra-step booting the kernel",
    "boot ||",
    "set centra-error ${errno}",
    "goto failed",
    ...failureBlock(`chain ${baseUrl}${ENTRY_SCRIPT_PATH}`),
  ]);
}

/**
 * On UEFI, iPXE starts the kernel through its EFI stub, which loads the initrd itself from the
 * file named by `initrd=` (iPXE exposes its images as files). Without the argument the stub boots
 * with no initrd and the kernel panics "VFS: Unable to mount root fs" (seen on OVMF with Debian's
 * iPXE). BIOS iPXE hands initrds over in the boot parameters and needs no argument.
 */
export function kernelCommandLine(cmdline: string, platform: Platform): string {
  return (platform === "efi" ? `initrd=initrd ${cmdline}` : cmdline).trim();
}

function renderMenu(spec: MenuBoot, machine: MachineIdentity, baseUrl: string): string {
  const lines = [
    "#!ipxe",
    `# Centra PXE: ${machine.mac} is not registered; the provisioning menu (default after ${spec.timeoutMs} ms: ${spec.defaultChoice}).`,
    "",
    ":menu",
    `menu ${spec.title}`,
    `item --gap -- Machine ${machine.mac} (${machine.platform}, ${machine.buildarch || "unknown arch"}) is not registered`,
    ...spec.items.map((item, i) => `item profile-${item.profile} ${i + 1}. ${item.label}`),
    "item --gap --",
    "item localdisk Boot from local disk",
    "item shell iPXE shell",
    "item reboot Reboot",
    // `choose` fails when the operator presses Esc: that means "let me at it", so the shell.
    `choose --timeout ${spec.timeoutMs} --default ${menuKey(spec.defaultChoice)} centra-choice || goto shell`,
    "goto ${centra-choice}",
    "",
  ];
  for (const item of spec.items) {
    lines.push(`:profile-${item.profile}`, `set centra-profile ${item.profile}`, "goto install");
  }
  lines.push(
    "",
    // The server renders the chosen profile's script, with the image version current right now.
    ...retryingFetch({
      label: "install",
      what: "the boot script of profile ${centra-profile}",
      command: `chain --autofree --replace ${baseUrl}${MACHINE_SCRIPT_PATH}?${MACHINE_QUERY}&profile=\${centra-profile}`,
      next: "exit",
    }),
    ...localDiskBlock(machine.platform),
    ":shell",
    "echo Type exit to return to the menu.",
    "shell",
    "goto menu",
    ":reboot",
    "reboot",
    ...failureBlock(`chain ${baseUrl}${ENTRY_SCRIPT_PATH}`),
  );
  return script(lines);
}

function menuKey(choice: string): string {
  return choice === "localdisk" || choice === "shell" || choice === "reboot" ? choice : `profile-${choice}`;
}

function renderLocalDisk(spec: LocalDiskBoot, machine: MachineIdentity, baseUrl: string): string {
  return script([
    "#!ipxe",
    `# Centra PXE: ${machine.mac} is installed; it boots its local disk.`,
    "",
    "goto localdisk",
    ...localDiskBlock(machine.platform, spec.method),
    ...failureBlock(`chain ${baseUrl}${ENTRY_SCRIPT_PATH}`),
  ]);
}

/**
 * Leave the network boot for the local disk. BIOS: `sanboot` the first hard disk (0x80);
 * `--no-describe` because there is no SAN to describe in an iBFT/ABFT table, and describing one
 * makes some OS installers look for iSCSI. UEFI: `exit` hands control back to the firmware's boot
 * manager, which goes on to the next boot entry (the disk); sanboot of a local drive does not work
 * under UEFI.
 */
function localDiskBlock(platform: Platform, method?: LocalBootMethod): string[] {
  const lines = [
    ":localdisk",
    "echo Centra PXE: booting from the local disk",
    "set centra-step booting from the local disk",
  ];
  // A node's `localBoot` overrides: some UEFI firmware answers `exit` by PXE booting again (sanboot
  // then boots the disk from iPXE), and some BIOS option ROMs boot the disk best from the firmware.
  // `http-404` is answered without a script (src/http/app.ts); where a script leaves anyway (the
  // menu's local-disk item) it does so the platform's way.
  const scripted = method === "http-404" ? undefined : method;
  if ((scripted ?? (platform === "efi" ? "exit" : "sanboot")) === "exit") lines.push("exit ||");
  else lines.push("sanboot --no-describe --drive 0x80 ||");
  lines.push("set centra-error ${errno}", "goto failed");
  return lines;
}

function renderNoBoot(spec: NoBoot, machine: MachineIdentity): string {
  return script([
    "#!ipxe",
    `# Centra PXE: ${machine.mac} does not boot from the network.`,
    "",
    `echo Centra PXE: ${machine.mac}: not booting from the network: ${oneLine(spec.reason)}`,
    "echo Returning to the firmware in 10 seconds.",
    "sleep 10",
    "exit",
  ]);
}

function renderUnavailable(spec: UnavailableBoot, machine: MachineIdentity, baseUrl: string): string {
  return script([
    "#!ipxe",
    `# Centra PXE: ${machine.mac} cannot boot right now.`,
    "",
    `echo Centra PXE: ${machine.mac}: cannot boot: ${oneLine(spec.reason)}`,
    // An unattended rack retries by itself once the operator fixes the server; someone at the
    // console can still get a shell.
    "prompt --key s --timeout 60000 Press s for the iPXE shell, or wait a minute to try again && shell ||",
    `chain --autofree --replace ${baseUrl}${ENTRY_SCRIPT_PATH} ||`,
    "set centra-error ${errno}",
    "set centra-step fetching the entry script again",
    "goto failed",
    ...failureBlock(`chain ${baseUrl}${ENTRY_SCRIPT_PATH}`),
  ]);
}

/**
 * A download that is tried DOWNLOAD_ATTEMPTS times with a pause between tries, then gives up to
 * `:failed`. `next` runs on success; after a `chain --replace` it never does (the chained script
 * replaced this one), and `exit` there only says so. The error number is copied on its own line: iPXE expands `${…}` in a whole line
 * before running it, so `cmd || set e ${errno}` would store the error of the command before.
 */
function retryingFetch(step: {
  label: string;
  what: string;
  /** What the step says it was doing when it failed; default "downloading". */
  doing?: string;
  command: string;
  next: "exit" | `goto ${string}`;
  /** The label to go to, without retrying, when the server answered 404 (IPXE_HTTP_NOT_FOUND_ERRORS). */
  notFound?: string;
}): string[] {
  return [
    `:${step.label}`,
    "set centra-try:int32 0",
    `set centra-step ${step.doing ?? "downloading"} ${step.what}`,
    `:${step.label}-retry`,
    `${step.command} && ${step.next} ||`,
    "set centra-error ${errno}",
    ...(step.notFound !== undefined
      ? IPXE_HTTP_NOT_FOUND_ERRORS.map((e) => `iseq \${centra-error} ${e} && goto ${step.notFound} ||`)
      : []),
    "inc centra-try",
    `iseq \${centra-try} ${DOWNLOAD_ATTEMPTS} && goto failed ||`,
    `echo Centra PXE: ${step.what}: attempt \${centra-try} of ${DOWNLOAD_ATTEMPTS} failed, retrying in ${RETRY_PAUSE_SECONDS} seconds`,
    `sleep ${RETRY_PAUSE_SECONDS}`,
    `goto ${step.label}-retry`,
    "",
  ];
}

/** The end of every failed path: say what failed and how to try again (`retry`), then the shell, never a silent hang. */
function failureBlock(retry: string): string[] {
  return [
    ":failed",
    "echo",
    "echo Centra PXE: failed while ${centra-step} (error ${centra-error}; iPXE printed the reason above).",
    `echo To try again: ${retry}`,
    "shell",
  ];
}

/** Text from outside (reasons, names) must stay on its line: a newline would be a new command. */
function oneLine(text: string): string {
  return text.replace(/[\x00-\x1f\x7f]+/g, " ").trim();
}

function script(lines: string[]): string {
  return `${lines.join("\n")}\n`;
}
