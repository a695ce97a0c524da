import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseConfig } from "../config/load.js";
import { silentLogger } from "../log.js";
import type { ImageCatalog } from "./image-catalog.js";
import { createGrubConfigs, parseGrubRequest, quote, renderGrubConfig, renderGrubEntry } from "./grub.js";
import { kernelCommandLine, renderEmbeddedScript, renderEntryScript, renderMachineScript } from "./ipxe.js";
import { createConfigResolver } from "./resolver.js";
import type { BootSpec, MachineIdentity, Platform } from "./spec.js";

/**
 * Golden scripts for BIOS/UEFI × known/unknown (and the other outcomes). Regenerate after an
 * intended change with `UPDATE_GOLDEN=1 node scripts/run-tests.mjs src/boot`, then read the diff.
 */

const GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), "../../testdata/ipxe");
const BASE_URL = "http://10.0.100.10";

const config = parseConfig(`
serverAddress: 10.0.100.10
boot: { menuTimeout: 10s, console: [tty0, "ttyS0,115200n8"] }
profiles:
  control-plane: { image: nixos, cmdline: "" }
  worker:        { image: nixos, cmdline: "nomodeset" }
  all-in-one:    { image: nixos }
nodes:
  "52:54:00:12:34:56": { profile: control-plane, hostname: control-plane-01, ipAddress: 10.0.100.50 }
  "52-54-00-12-34-5D": { profile: worker, hostname: worker-04, ipAddress: 10.0.100.64 }
`);

const images: ImageCatalog = {
  currentVersion: async (image) => (image === "nixos" ? "24.11" : undefined),
  hasVersion: async (image, version) => image === "nixos" && (version === "24.05" || version === "24.11"),
  cmdline: async () => "init=/nix/store/abc-nixos-system/init loglevel=4",
};
const resolver = createConfigResolver(images);

function machine(mac: string, platform: Platform, extra: Partial<MachineIdentity> = {}): MachineIdentity {
  return { mac, platform, buildarch: platform === "efi" ? "x86_64" : "i386", uuid: "", serial: "", ...extra };
}

function golden(name: string, actual: string, dir = GOLDEN_DIR): void {
  const file = join(dir, name);
  if (process.env.UPDATE_GOLDEN === "1") {
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  let expected: string;
  try {
    expected = readFileSync(file, "utf8");
  } catch {
    assert.fail(`golden file ${file} is missing; create it with UPDATE_GOLDEN=1`);
  }
  assert.equal(actual, expected, `${name} differs from its golden file (UPDATE_GOLDEN=1 regenerates it)`);
}

async function render(m: MachineIdentity): Promise<{ spec: BootSpec; text: string }> {
  const spec = await resolver.resolve(m, { baseUrl: BASE_URL, config });
  return { spec, text: renderMachineScript(spec, m, BASE_URL) };
}

test("entry script chains to the per-machine script with the machine's identity", () => {
  const text = renderEntryScript(BASE_URL);
  golden("entry.ipxe", text);
  assert.match(text, /^#!ipxe\n/);
  assert.match(
    text,
    /machine\.ipxe\?mac=\$\{netX\/mac:hexhyp\}&buildarch=\$\{buildarch:uristring\}&platform=\$\{platform:uristring\}&uuid=\$\{uuid\}&serial=\$\{serial:uristring\}/,
  );
  // localBoot: http-404: a 404 for the machine's script (BIOS's and UEFI's error number) is not
  // retried; iPXE exits with an error, and the firmware goes on to its next boot option.
  const lines = text.split("\n");
  const failed = lines.indexOf("set centra-error ${errno}");
  assert.deepEqual(lines.slice(failed + 1, failed + 3), [
    "iseq ${centra-error} 0x2d0c613b && goto not-served ||",
    "iseq ${centra-error} 0x2d0c618e && goto not-served ||",
  ]);
  const notServed = lines.indexOf(":not-served");
  assert.ok(notServed > failed);
  assert.equal(
    lines.slice(notServed + 1).find((l) => !l.startsWith("echo")),
    "exit 1",
  );
});

test("embedded script of our own build: the firmware's address or DHCPv4 only, then straight to the machine's script, each retried, else the shell", () => {
  const text = renderEmbeddedScript({ origin: "https://10.0.100.10", build: "0123abcd" });
  golden("embedded.ipxe", text);
  const lines = text.split("\n");
  // The DHCPACK iPXE kept from the firmware's PXE (cachedhcp) sets ${netX/ip}: no second DORA.
  const reuse = lines.indexOf("isset ${netX/ip} && iflinkwait --timeout 15000 ${netX/ifname} && goto machine ||");
  assert.ok(reuse > 0, "reuses the firmware's address when iPXE has it");
  assert.ok(reuse < lines.indexOf(":network"), "before any DHCP");
  assert.ok(lines.includes("ifconf --configurator dhcp && goto machine ||"), "else DHCPv4 only: no IPv6 router wait");
  assert.ok(!lines.some((l) => /^(autoboot|dhcp|ifconf)\b(?!.*--configurator dhcp)/.test(l)), "no IPv6 configurator");
  // The same identity the entry script sends (renderEntryScript), without fetching it first.
  const entryChain = renderEntryScript("https://10.0.100.10")
    .split("\n")
    .find((l) => l.startsWith("chain "))!;
  assert.ok(lines.includes(entryChain), `chains as the entry script would: ${entryChain}`);
  assert.ok(!lines.some((l) => l.startsWith("chain ") && l.includes("boot.ipxe")), "no detour through boot.ipxe");
  assert.equal(
    lines.filter((l) => l.startsWith("iseq ${centra-try} 3 && goto failed")).length,
    2,
    "both steps retried",
  );
  assert.equal(lines.at(-2), "shell", "a machine that cannot reach us ends in the shell");
  // `localBoot: http-404` reaches our build's script too: a 404 leaves at once, not retried.
  for (const error of ["0x2d0c613b", "0x2d0c618e"])
    assert.ok(lines.includes(`iseq \${centra-error} ${error} && goto not-served ||`), `404 (${error}) leaves`);
  assert.equal(lines[lines.indexOf(":not-served") + 2], "exit 1");
});

for (const platform of ["pcbios", "efi"] as const) {
  test(`known node on ${platform}: kernel + initrd of its profile with the seed's parameters`, async () => {
    const { spec, text } = await render(machine("52:54:00:12:34:56", platform));
    golden(`known-${platform}.ipxe`, text);
    assert.equal(spec.kind, "image");
    const kernelLine = text.split("\n").find((l) => l.startsWith("kernel "))!;
    assert.ok(kernelLine.startsWith("kernel http://10.0.100.10/boot/images/nixos/24.11/kernel "));
    for (const word of [
      "centra.profile=control-plane",
      "centra.hostname=control-plane-01",
      "console=tty0",
      "console=ttyS0,115200n8",
      "init=/nix/store/abc-nixos-system/init",
    ]) {
      assert.ok(kernelLine.split(" ").includes(word), `${word} in ${kernelLine}`);
    }
    assert.equal(kernelLine.includes("initrd=initrd"), platform === "efi", "initrd= only for the EFI stub");
    assert.match(
      text,
      /^initrd --name initrd http:\/\/10\.0\.100\.10\/boot\/images\/nixos\/24\.11\/initrd && goto boot \|\|$/m,
    );
    assert.match(text, /^shell$/m, "a failure ends in the shell");
  });

  test(`unknown machine on ${platform}: the seed's menu with the configured timeout`, async () => {
    const { spec, text } = await render(machine("52:54:00:aa:bb:cc", platform));
    golden(`unknown-${platform}.ipxe`, text);
    assert.equal(spec.kind, "menu");
    assert.match(text, /^menu Centra Cloud - Bare-Metal Provisioning$/m);
    assert.match(text, /^item profile-control-plane 1\. Control Plane Node \(All Services\)$/m);
    assert.match(text, /^item profile-worker 2\. Worker Node \(Compute Services\)$/m);
    assert.match(text, /^item profile-all-in-one 3\. All-in-One Node \(Testing\/Homelab\)$/m);
    assert.match(text, /^choose --timeout 10000 --default localdisk centra-choice \|\| goto shell$/m);
    assert.match(text, platform === "efi" ? /^exit \|\|$/m : /^sanboot --no-describe --drive 0x80 \|\|$/m);
  });
}

test("a MAC written with dashes in the config matches; the profile's own cmdline comes last", async () => {
  const { spec } = await render(machine("52:54:00:12:34:5d", "efi"));
  assert.equal(spec.kind, "image");
  if (spec.kind !== "image") return;
  assert.equal(spec.hostname, "worker-04");
  assert.ok(spec.cmdline.endsWith("console=ttyS0,115200n8 nomodeset"));
});

test("an unknown machine that picked a profile from the menu boots it, without a hostname", async () => {
  const { spec, text } = await render(machine("52:54:00:aa:bb:cc", "efi", { requestedProfile: "all-in-one" }));
  assert.equal(spec.kind, "image");
  assert.doesNotMatch(text, /centra\.hostname=/);
  assert.match(text, /centra\.profile=all-in-one/);
});

test("a known node cannot be talked into another profile through the query", async () => {
  const { spec } = await render(machine("52:54:00:12:34:56", "pcbios", { requestedProfile: "worker" }));
  assert.equal(spec.kind === "image" && spec.profile, "control-plane");
});

test("no current version: the machine is told why and retries, it does not hang", async () => {
  const empty: ImageCatalog = {
    currentVersion: async () => undefined,
    hasVersion: async () => false,
    cmdline: async () => "",
  };
  const m = machine("52:54:00:12:34:56", "pcbios");
  const spec = await createConfigResolver(empty).resolve(m, { baseUrl: BASE_URL, config });
  assert.equal(spec.kind, "unavailable");
  const text = renderMachineScript(spec, m, BASE_URL);
  golden("unavailable.ipxe", text);
  assert.match(text, /image nixos has no current version/);
});

test("later lifecycle outcomes: local disk per platform, and no boot", () => {
  golden(
    "localdisk-pcbios.ipxe",
    renderMachineScript({ kind: "localdisk" }, machine("52:54:00:12:34:56", "pcbios"), BASE_URL),
  );
  golden(
    "localdisk-efi.ipxe",
    renderMachineScript({ kind: "localdisk" }, machine("52:54:00:12:34:56", "efi"), BASE_URL),
  );
  const retired = renderMachineScript(
    { kind: "none", reason: "retired\nshell" },
    machine("52:54:00:12:34:56", "efi"),
    BASE_URL,
  );
  assert.match(retired, /not booting from the network: retired shell$/m, "a reason cannot inject a command");
});

test("initrd= is prepended only on EFI", () => {
  assert.equal(kernelCommandLine("a b", "efi"), "initrd=initrd a b");
  assert.equal(kernelCommandLine("a b", "pcbios"), "a b");
});

/** The same decisions rendered for Debian's signed grub (Secure Boot), goldens in testdata/grub. */
const GRUB_GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), "../../testdata/grub");

test("grub: the entry config fetches the machine's own config by its MAC and CPU over TFTP", () => {
  const text = renderGrubEntry();
  golden("entry.cfg", text, GRUB_GOLDEN_DIR);
  assert.match(text, /^source "\$prefix\/machine\/\$grub_cpu\/\$net_default_mac\.cfg"$/m);
  assert.match(text, /^reboot$/m, "a machine whose config cannot be fetched starts over, it does not hang");
});

test("grub: the names it asks for, and only those, are generated", () => {
  assert.deepEqual(parseGrubRequest("/grub/grub.cfg"), { kind: "entry" });
  assert.deepEqual(parseGrubRequest("grub/machine/x86_64/52:54:00:12:34:5D.cfg"), {
    kind: "machine",
    cpu: "x86_64",
    mac: "52:54:00:12:34:5d",
  });
  assert.deepEqual(parseGrubRequest("/grub/machine/arm64/52:54:00:12:34:5d/worker.cfg"), {
    kind: "machine",
    cpu: "arm64",
    mac: "52:54:00:12:34:5d",
    profile: "worker",
  });
  for (const other of [
    "grub/x86_64-efi/grub.cfg",
    "grub/x86_64-efi/command.lst",
    "grub/machine/x86_64/../../etc/passwd.cfg",
    "grub/machine/x86_64/not-a-mac.cfg",
    "shimx64.efi",
  ])
    assert.equal(parseGrubRequest(other), undefined, other);
});

test("grub: a known node boots its image over TFTP with the same kernel arguments as iPXE", async () => {
  const m = machine("52:54:00:12:34:56", "efi");
  const spec = await resolver.resolve(m, { baseUrl: BASE_URL, config });
  const text = renderGrubConfig(spec, m);
  golden("known-efi.cfg", text, GRUB_GOLDEN_DIR);
  assert.ok(spec.kind === "image");
  const linux = text.split("\n").find((l) => l.startsWith("linux "))!;
  assert.ok(linux.startsWith("linux /boot/images/nixos/24.11/kernel "), linux);
  for (const word of spec.cmdline.split(" ")) assert.ok(linux.includes(quote(word)), `${word} in ${linux}`);
  assert.doesNotMatch(linux, /initrd=/, "grub hands the initrd over itself");
  assert.match(text, /^initrd \/boot\/images\/nixos\/24\.11\/initrd$/m);
  assert.match(text, /^boot$/m);
});

test("grub: the menu, the local disk, no boot and unavailable", async () => {
  const unknown = machine("52:54:00:aa:bb:cc", "efi");
  const menu = await resolver.resolve(unknown, { baseUrl: BASE_URL, config });
  const text = renderGrubConfig(menu, unknown);
  golden("unknown-efi.cfg", text, GRUB_GOLDEN_DIR);
  assert.match(text, /^set default='localdisk'$/m);
  assert.match(text, /^ {2}source "\$prefix\/machine\/\$grub_cpu\/\$net_default_mac\/worker\.cfg"$/m);
  const disk = renderGrubConfig({ kind: "localdisk" }, unknown);
  golden("localdisk-efi.cfg", disk, GRUB_GOLDEN_DIR);
  assert.match(disk, /^exit$/m);
  const retired = renderGrubConfig({ kind: "none", reason: "retired\nreboot" }, unknown);
  assert.match(retired, /not booting from the network: retired reboot'$/m, "a reason cannot inject a command");
  assert.equal(quote("it's $x"), `'it'\\''s $x'`);
});

test("grub: the TFTP hook answers with the resolver's decision for the requesting address", async () => {
  const seen: { remote?: string; requestedProfile?: string }[] = [];
  const configs = createGrubConfigs({
    resolver: () => ({
      resolve: async (m, context) => {
        seen.push({ remote: context.remote, requestedProfile: m.requestedProfile });
        return resolver.resolve(m, context);
      },
    }),
    logger: silentLogger,
  });
  assert.equal(await configs("grub/x86_64-efi/grub.cfg", "10.0.100.50", config), undefined);
  assert.equal((await configs("/grub/grub.cfg", "10.0.100.50", config))?.toString(), renderGrubEntry());
  const text = (await configs("/grub/machine/x86_64/52:54:00:aa:bb:cc/worker.cfg", "10.0.100.99", config))!;
  assert.match(text.toString(), /centra\.profile=worker/);
  assert.deepEqual(seen, [{ remote: "10.0.100.99", requestedProfile: "worker" }]);
});

test("localBoot overrides the platform's way to the disk", () => {
  const efi = renderMachineScript(
    { kind: "localdisk", method: "sanboot" },
    machine("52:54:00:12:34:56", "efi"),
    BASE_URL,
  );
  assert.match(efi, /^sanboot --no-describe --drive 0x80 \|\|$/m);
  assert.doesNotMatch(efi, /^exit \|\|$/m);
  const bios = renderMachineScript(
    { kind: "localdisk", method: "exit" },
    machine("52:54:00:12:34:56", "pcbios"),
    BASE_URL,
  );
  assert.match(bios, /^exit \|\|$/m);
  // http-404 is answered without a script (src/http/app.ts); rendered anyway, the platform's way.
  const served = renderMachineScript(
    { kind: "localdisk", method: "http-404" },
    machine("52:54:00:12:34:56", "pcbios"),
    BASE_URL,
  );
  assert.match(served, /^sanboot --no-describe --drive 0x80 \|\|$/m);
});
