import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../config/load.js";
import type { ImageCatalog } from "./image-catalog.js";
import { consolesFor, createConfigResolver, wantedBuild } from "./resolver.js";
import type { MachineIdentity } from "./spec.js";

const config = parseConfig(`
boot: { console: [tty0, "ttyS0,115200n8"] }
profiles:
  worker:
    image: nixos
    version: "24.05"
    arches:
      arm64: { image: nixos-arm64, console: ["ttyAMA0,115200n8"] }
nodes:
  "52:54:00:00:00:01": { profile: worker, hostname: w1 }
`);

// A state directory from before images had architectures: every build is on the x86_64 line,
// the arm64 kernel under its own image name, which the profile's arches entry names.
const images: ImageCatalog = {
  currentVersion: async (image, arch = "x86_64") =>
    arch !== "x86_64" ? undefined : image === "nixos-arm64" ? "a1" : "24.11",
  hasVersion: async (image, version, arch = "x86_64") =>
    arch === "x86_64" && (image === "nixos" ? version === "24.05" : version === "a1"),
  cmdline: async () => "",
};
const resolver = createConfigResolver(images);
const machine = (buildarch: string): MachineIdentity => ({
  mac: "52:54:00:00:00:01",
  buildarch,
  platform: "efi",
  uuid: "",
  serial: "",
});

test("an ARM64 machine gets its architecture's image and console; x86 keeps the profile's own", async () => {
  const arm = await resolver.resolve(machine("arm64"), { baseUrl: "http://s", config });
  assert.equal(arm.kind, "image");
  if (arm.kind !== "image") return;
  assert.equal(arm.kernelUrl, "http://s/boot/images/nixos-arm64/a1/kernel");
  assert.match(arm.cmdline, /console=ttyAMA0,115200n8/);
  assert.doesNotMatch(arm.cmdline, /ttyS0/);
  const x86 = await resolver.resolve(machine("x86_64"), { baseUrl: "http://s", config });
  assert.ok(x86.kind === "image");
  assert.equal(x86.kind === "image" && x86.kernelUrl, "http://s/boot/images/nixos/24.05/kernel");
  assert.match(x86.kind === "image" ? x86.cmdline : "", /console=ttyS0,115200n8/);
});

test("arches take only known architectures and valid image names", () => {
  assert.throws(() => parseConfig(`profiles: { w: { image: n, arches: { riscv: { image: x } } } }`));
  assert.throws(() => parseConfig(`profiles: { w: { image: n, arches: { arm64: { image: "../x" } } } }`));
});

/** A catalog of `image@arch` → { current, versions }. */
function catalog(builds: Record<string, { current?: string; versions: string[] }>): ImageCatalog {
  const key = (image: string, arch = "x86_64") => (arch === "x86_64" ? image : `${image}@${arch}`);
  return {
    currentVersion: async (image, arch) => builds[key(image, arch)]?.current,
    hasVersion: async (image, version, arch) => builds[key(image, arch)]?.versions.includes(version) ?? false,
    cmdline: async () => "",
  };
}

const perArch = parseConfig(`
profiles:
  worker: { image: debian }
  pinned: { image: debian, version: "12.5" }
  mapped:
    image: debian
    arches: { arm64: { image: legacy-arm, console: ["ttyAMA0,115200n8"] } }
nodes:
  "52:54:00:00:00:01": { profile: worker, hostname: w1 }
  "52:54:00:00:00:02": { profile: pinned, hostname: p1 }
  "52:54:00:00:00:03": { profile: mapped, hostname: m1 }
`);
const on = (mac: string, buildarch: string): MachineIdentity => ({ ...machine(buildarch), mac });

test("wantedBuild: the machine's own architecture; only an arches entry's own image may fall back to x86_64", () => {
  const profiles = perArch.profiles;
  assert.deepEqual(wantedBuild(profiles.worker!, "arm64"), {
    kind: "build",
    image: "debian",
    arch: "arm64",
    fallbackToDefault: false,
  });
  // BIOS machines run undionly.kpxe, an i386 iPXE: they boot the x86_64 build as before.
  assert.equal((wantedBuild(profiles.worker!, "i386") as { arch: string }).arch, "x86_64");
  assert.equal((wantedBuild(profiles.worker!, "x86_64") as { arch: string }).arch, "x86_64");
  assert.deepEqual(wantedBuild(profiles.pinned!, "arm64"), {
    kind: "build",
    image: "debian",
    arch: "arm64",
    version: "12.5",
    fallbackToDefault: false,
  });
  assert.deepEqual(wantedBuild(profiles.mapped!, "arm64"), {
    kind: "build",
    image: "legacy-arm",
    arch: "arm64",
    fallbackToDefault: true,
  });
  assert.deepEqual(wantedBuild(profiles.worker!, "riscv64"), {
    kind: "unknown-arch",
    image: "debian",
    buildarch: "riscv64",
  });
});

test("one image name serves each architecture its own build and current", async () => {
  const resolver = createConfigResolver(
    catalog({ debian: { current: "12.4", versions: ["12.4"] }, "debian@arm64": { current: "a7", versions: ["a7"] } }),
  );
  const arm = await resolver.resolve(on("52:54:00:00:00:01", "arm64"), { baseUrl: "http://s", config: perArch });
  assert.equal(arm.kind === "image" && arm.kernelUrl, "http://s/boot/images/debian@arm64/a7/kernel");
  assert.equal(arm.kind === "image" && arm.arch, "arm64");
  const x86 = await resolver.resolve(on("52:54:00:00:00:01", "x86_64"), { baseUrl: "http://s", config: perArch });
  assert.equal(x86.kind === "image" && x86.kernelUrl, "http://s/boot/images/debian/12.4/kernel");
  const bios = await resolver.resolve(on("52:54:00:00:00:01", "i386"), { baseUrl: "http://s", config: perArch });
  assert.equal(bios.kind === "image" && bios.initrdUrl, "http://s/boot/images/debian/12.4/initrd");
});

test("an ARM64 machine whose image has no arm64 build is told so, never given the x86 kernel", async () => {
  const resolver = createConfigResolver(catalog({ debian: { current: "12.5", versions: ["12.5"] } }));
  for (const mac of ["52:54:00:00:00:01", "52:54:00:00:00:02"]) {
    const arm = await resolver.resolve(on(mac, "arm64"), { baseUrl: "http://s", config: perArch });
    assert.equal(arm.kind, "unavailable", mac);
    if (arm.kind !== "unavailable") continue;
    assert.match(arm.reason, /image debian has no arm64 build/);
    assert.match(arm.reason, /centra-pxe images add debian --arch arm64 --kernel F --initrd F/);
    assert.deepEqual(arm.missingBuild, { image: "debian", arch: "arm64", buildarch: "arm64" });
  }
  const riscv = await resolver.resolve(on("52:54:00:00:00:01", "riscv64"), { baseUrl: "http://s", config: perArch });
  assert.equal(riscv.kind, "unavailable");
  // The x86 machine of the same profile still boots.
  const x86 = await resolver.resolve(on("52:54:00:00:00:02", "x86_64"), { baseUrl: "http://s", config: perArch });
  assert.equal(x86.kind === "image" && x86.version, "12.5");
});

test("a pinned version is looked up in the machine's own build line", async () => {
  const resolver = createConfigResolver(
    catalog({
      debian: { current: "12.5", versions: ["12.5"] },
      "debian@arm64": { current: "12.6", versions: ["12.6"] },
    }),
  );
  const arm = await resolver.resolve(on("52:54:00:00:00:02", "arm64"), { baseUrl: "http://s", config: perArch });
  assert.equal(arm.kind, "unavailable");
  assert.match(arm.kind === "unavailable" ? arm.reason : "", /no arm64 build of version 12\.5/);
});

test("an arches entry's own image: its arm64 build when it has one, else its pre-arch (x86_64 line) build", async () => {
  const legacy = createConfigResolver(catalog({ "legacy-arm": { current: "k1", versions: ["k1"] } }));
  const old = await legacy.resolve(on("52:54:00:00:00:03", "arm64"), { baseUrl: "http://s", config: perArch });
  assert.equal(old.kind === "image" && old.kernelUrl, "http://s/boot/images/legacy-arm/k1/kernel");
  assert.match(old.kind === "image" ? old.cmdline : "", /console=ttyAMA0/);
  const both = createConfigResolver(
    catalog({
      "legacy-arm": { current: "k1", versions: ["k1"] },
      "legacy-arm@arm64": { current: "k2", versions: ["k2"] },
    }),
  );
  const now = await both.resolve(on("52:54:00:00:00:03", "arm64"), { baseUrl: "http://s", config: perArch });
  assert.equal(now.kind === "image" && now.kernelUrl, "http://s/boot/images/legacy-arm@arm64/k2/kernel");
});

test("boot.console on ARM: the seed's ttyS0 is ARM's PL011 ttyAMA0 there; x86 keeps it", async () => {
  assert.deepEqual(consolesFor(["tty0", "ttyS1,115200n8"], "arm64"), ["tty0", "ttyAMA1,115200n8"]);
  assert.deepEqual(consolesFor(["tty0", "ttyS0,115200n8"], "x86_64"), ["tty0", "ttyS0,115200n8"]);
  const config = parseConfig(`
boot: { console: ["ttyS0,115200n8"] }
profiles: { worker: { image: debian } }
nodes: { "52:54:00:00:00:01": { profile: worker } }
`);
  const resolver = createConfigResolver(catalog({ "debian@arm64": { current: "a1", versions: ["a1"] } }));
  const arm = await resolver.resolve(machine("arm64"), { baseUrl: "http://s", config });
  assert.match(arm.kind === "image" ? arm.cmdline : "", /console=ttyAMA0,115200n8/);
  assert.doesNotMatch(arm.kind === "image" ? arm.cmdline : "", /ttyS0/);
});
