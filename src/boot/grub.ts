import { httpOrigin, normalizeMac } from "../config/primitives.js";
import type { Config } from "../config/schema.js";
import { imageTree } from "../files/state-dir.js";
import type { Logger } from "../log.js";
import type {
  BootResolver,
  BootSpec,
  ImageBoot,
  LocalDiskBoot,
  MachineIdentity,
  MenuBoot,
  NoBoot,
  UnavailableBoot,
} from "./spec.js";

/**
 * grub configs for the Secure Boot chain (shim → Debian's signed netboot grub → the signed kernel).
 * The same BootSpec as the iPXE script, rendered for grub; pure string building, golden files in
 * testdata/grub/.
 *
 * What Debian's `grubnetx64.efi.signed` does (seen on OVMF with Secure Boot on, grub 2.06-13+deb12u2):
 * its prefix is `(tftp,<next-server>)/grub`, and its built-in memdisk config sources
 * `$prefix/x86_64-efi/grub.cfg` if that exists, else `$prefix/grub.cfg`. It never asks for the
 * per-MAC `grub.cfg-01-<mac>` or per-IP names (those are the search of a grub whose `normal` runs
 * without a config; this one is given its memdisk's). It has no `http` module (and under Secure
 * Boot's lockdown loads none from the network), so everything after shim comes over TFTP. It
 * knows its NIC's MAC (`$net_default_mac`) and its CPU (`$grub_cpu`: `x86_64`, `arm64`).
 */

/** The entry config grub reads from the TFTP root (its prefix), the same for every machine. */
export const GRUB_ENTRY_CONFIG = "grub/grub.cfg";

/** Seconds a machine waits before it tries again when it cannot boot now (as the iPXE script's minute). */
const RETRY_SECONDS = 60;

/** A TFTP name grub asks for, as far as Centra PXE generates it. */
export type GrubRequest =
  | { kind: "entry" }
  /** `grub/machine/<grub_cpu>/<mac>.cfg`, or `…/<mac>/<profile>.cfg` for a pick from the menu. */
  | { kind: "machine"; cpu: string; mac: string; profile?: string };

/** Which generated config `filename` (a TFTP request, leading `/` or not) names, if any. */
export function parseGrubRequest(filename: string): GrubRequest | undefined {
  const name = filename.replace(/^\/+/, "");
  if (name === GRUB_ENTRY_CONFIG) return { kind: "entry" };
  const match = /^grub\/machine\/([a-z0-9_]{1,16})\/([0-9A-Fa-f:]{17})(?:\/([a-z0-9][a-z0-9-]{0,62}))?\.cfg$/.exec(
    name,
  );
  if (!match) return undefined;
  const mac = normalizeMac(match[2]!);
  if (mac === undefined) return undefined;
  return { kind: "machine", cpu: match[1]!, mac, ...(match[3] !== undefined ? { profile: match[3] } : {}) };
}

/** grub's `$grub_cpu` → iPXE's `${buildarch}`, the name the boot decision knows machines by. */
function buildarchOf(cpu: string): string {
  return cpu === "i386" ? "i386" : cpu;
}

/** The entry config: fetch this machine's own config by its MAC, or say why not and start over. */
export function renderGrubEntry(): string {
  return lines([
    "# Centra PXE entry config for Debian's signed netboot grub (Secure Boot: shim → grub → signed kernel).",
    "# Hands the machine's MAC and CPU to the server, which answers with this machine's own config.",
    "set timeout=0",
    `source "$prefix/machine/$grub_cpu/$net_default_mac.cfg"`,
    `echo "Centra PXE: no boot config for $net_default_mac from $net_default_server; starting over in ${RETRY_SECONDS} seconds"`,
    `sleep ${RETRY_SECONDS}`,
    "reboot",
  ]);
}

/** The per-machine config for a boot decision. */
export function renderGrubConfig(spec: BootSpec, machine: MachineIdentity): string {
  switch (spec.kind) {
    case "image":
      return renderImage(spec, machine);
    case "menu":
      return renderMenu(spec, machine);
    case "localdisk":
      return renderLocalDisk(spec, machine);
    case "none":
      return renderNoBoot(spec, machine);
    case "unavailable":
      return renderUnavailable(spec, machine);
  }
}

/** The TFTP path of an image file: the same as its HTTP path (src/tftp serves images there too). */
function imagePath(spec: ImageBoot, file: "kernel" | "initrd"): string {
  return `/boot/images/${imageTree(spec.image, spec.arch)}/${spec.version}/${file}`;
}

function renderImage(spec: ImageBoot, machine: MachineIdentity): string {
  const who = spec.hostname !== undefined ? `${spec.hostname} (${machine.mac})` : machine.mac;
  return lines([
    `# Centra PXE: ${who} boots profile ${spec.profile}, image ${imageTree(spec.image, spec.arch)} ${spec.version}, through shim and grub.`,
    ...failedFunction(),
    `echo ${quote(`Centra PXE: ${who}: profile ${spec.profile}, image ${imageTree(spec.image, spec.arch)} ${spec.version}`)}`,
    // grub's `linux` under shim verifies the kernel's signature (shim_lock) and refuses an unsigned
    // one. grub's script has no `||`: a failed step prints its error and the next ones fail too,
    // down to the last line, which says so and starts over.
    `echo "Centra PXE: loading the kernel and initrd over TFTP"`,
    `linux ${imagePath(spec, "kernel")} ${spec.cmdline.split(" ").filter(Boolean).map(quote).join(" ")}`,
    `initrd ${imagePath(spec, "initrd")}`,
    "boot",
    `centra_failed ${quote("loading or booting the kernel (a kernel must be signed by a key shim trusts)")}`,
  ]);
}

function renderMenu(spec: MenuBoot, machine: MachineIdentity): string {
  const entries = spec.items.map((item, i) => [
    `menuentry ${quote(`${i + 1}. ${item.label}`)} --id ${quote(`profile-${item.profile}`)} {`,
    `  source "$prefix/machine/$grub_cpu/$net_default_mac/${item.profile}.cfg"`,
    "}",
  ]);
  return lines([
    `# Centra PXE: ${machine.mac} is not registered; the provisioning menu (default after ${spec.timeoutMs} ms: ${spec.defaultChoice}).`,
    `set timeout=${Math.max(0, Math.ceil(spec.timeoutMs / 1000))}`,
    `set default=${quote(spec.defaultChoice === "localdisk" ? "localdisk" : `profile-${spec.defaultChoice}`)}`,
    `echo ${quote(`${spec.title}: machine ${machine.mac} is not registered`)}`,
    ...entries.flat(),
    `menuentry "Boot from local disk" --id localdisk {`,
    ...localDiskLines().map((l) => `  ${l}`),
    "}",
    `menuentry "Reboot" --id reboot {`,
    "  reboot",
    "}",
  ]);
}

/**
 * grub's `exit` returns to shim and shim to the firmware's boot manager, which goes on to the next
 * boot entry (the disk), as iPXE's `exit` does on UEFI.
 */
function localDiskLines(): string[] {
  return [`echo "Centra PXE: booting from the local disk"`, "exit"];
}

function renderLocalDisk(_spec: LocalDiskBoot, machine: MachineIdentity): string {
  return lines([`# Centra PXE: ${machine.mac} is installed; it boots its local disk.`, ...localDiskLines()]);
}

function renderNoBoot(spec: NoBoot, machine: MachineIdentity): string {
  return lines([
    `# Centra PXE: ${machine.mac} does not boot from the network.`,
    `echo ${quote(`Centra PXE: ${machine.mac}: not booting from the network: ${spec.reason}`)}`,
    `echo "Returning to the firmware in 10 seconds."`,
    "sleep 10",
    "exit",
  ]);
}

function renderUnavailable(spec: UnavailableBoot, machine: MachineIdentity): string {
  return lines([
    `# Centra PXE: ${machine.mac} cannot boot right now.`,
    `echo ${quote(`Centra PXE: ${machine.mac}: cannot boot: ${spec.reason}`)}`,
    `echo "Trying again in ${RETRY_SECONDS} seconds."`,
    `sleep ${RETRY_SECONDS}`,
    `configfile "$prefix/grub.cfg"`,
  ]);
}

/** The end of every failed step: say what failed, then start over, never a silent hang. */
function failedFunction(): string[] {
  return [
    "set timeout=0",
    "function centra_failed {",
    `  echo "Centra PXE: failed while $1 (grub printed the reason above); starting over in ${RETRY_SECONDS} seconds"`,
    `  sleep ${RETRY_SECONDS}`,
    "  reboot",
    "}",
  ];
}

/**
 * One grub word in single quotes: nothing inside is expanded (`$` stays literal, as the kernel
 * must see it), and a `'` is closed, escaped and reopened. Control characters (a newline would end
 * the command) become spaces.
 */
export function quote(text: string): string {
  const clean = text.replace(/[\x00-\x1f\x7f]+/g, " ");
  return `'${clean.replace(/'/g, `'\\''`)}'`;
}

function lines(all: string[]): string {
  return `${all.join("\n")}\n`;
}

/**
 * The TFTP part's `generated` hook: the entry config, and each machine's config decided by the
 * same resolver as `machine.ipxe` (with the same trust rules: `remote` is the TFTP client's
 * address, so the install token goes only to the address DHCP gave that MAC).
 */
export function createGrubConfigs(options: {
  resolver: () => BootResolver;
  logger: Logger;
}): (filename: string, client: string, config: Config) => Promise<Buffer | undefined> {
  return async (filename, client, config) => {
    const request = parseGrubRequest(filename);
    if (!request) return undefined;
    if (request.kind === "entry") return Buffer.from(renderGrubEntry());
    const machine: MachineIdentity = {
      mac: request.mac,
      buildarch: buildarchOf(request.cpu),
      platform: "efi",
      uuid: "",
      serial: "",
      ...(request.profile !== undefined ? { requestedProfile: request.profile } : {}),
    };
    const spec = await options.resolver().resolve(machine, {
      baseUrl: httpOrigin(config.serverAddress, config.http.port),
      config,
      remote: client,
    });
    options.logger.info(
      {
        mac: machine.mac,
        platform: machine.platform,
        buildarch: machine.buildarch,
        remote: client,
        boot: spec.kind,
        loader: "grub",
        ...(spec.kind === "image"
          ? {
              profile: spec.profile,
              hostname: spec.hostname,
              image: `${spec.image}/${spec.version}`,
              arch: spec.arch,
            }
          : {}),
        ...(spec.kind === "unavailable" || spec.kind === "none" ? { reason: spec.reason } : {}),
      },
      "boot script",
    );
    return Buffer.from(renderGrubConfig(spec, machine));
  };
}
