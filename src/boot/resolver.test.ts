import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../config/load.js";
import type { ImageCatalog } from "./image-catalog.js";
import { createConfigResolver } from "./resolver.js";
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

const images: ImageCatalog = {
  currentVersion: async (image) => (image === "nixos-arm64" ? "a1" : "24.11"),
  hasVersion: async (image, version) => (image === "nixos" ? version === "24.05" : version === "a1"),
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
