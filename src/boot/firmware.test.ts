import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decideBoot,
  detectFirmware,
  Firmware,
  FIRMWARE_TABLE,
  httpBootBase,
  type ClientHints,
  type FirmwareTable,
} from "./firmware.js";

const ALL = new Set(["undionly.kpxe", "ipxe.efi", "ipxe-i386.efi", "ipxe-arm64.efi", "snponly.efi"]);
const DEBIAN = new Set(["undionly.kpxe", "ipxe.efi", "snponly.efi"]);
const BASE = httpBootBase("10.0.100.10", 80);
const pxe = (arch: number | undefined): ClientHints => ({
  arch,
  userClasses: [],
  vendorClass: `PXEClient:Arch:${String(arch ?? 0).padStart(5, "0")}:UNDI:003016`,
});
const httpClient = (arch: number): ClientHints => ({
  arch,
  userClasses: [],
  vendorClass: `HTTPClient:Arch:${String(arch).padStart(5, "0")}:UNDI:003000`,
});

describe("firmware table (PRODUCT.md §3)", () => {
  const cases: { name: string; hints: ClientHints; installed: ReadonlySet<string>; expect: string }[] = [
    {
      name: "iPXE user class gets the entry script",
      hints: { arch: 7, userClasses: ["iPXE"], vendorClass: "PXEClient:Arch:00007" },
      installed: ALL,
      expect: "http http://10.0.100.10/boot/ipxe/boot.ipxe",
    },
    { name: "BIOS", hints: pxe(0), installed: ALL, expect: "tftp undionly.kpxe" },
    { name: "BIOS ROM without option 93", hints: pxe(undefined), installed: ALL, expect: "tftp undionly.kpxe" },
    { name: "UEFI IA32", hints: pxe(6), installed: ALL, expect: "tftp ipxe-i386.efi" },
    { name: "UEFI x64 (7)", hints: pxe(7), installed: ALL, expect: "tftp ipxe.efi" },
    { name: "UEFI x64 (9)", hints: pxe(9), installed: ALL, expect: "tftp ipxe.efi" },
    {
      name: "UEFI x64 falls back to snponly.efi",
      hints: pxe(7),
      installed: new Set(["snponly.efi"]),
      expect: "tftp snponly.efi",
    },
    { name: "UEFI ARM64 installed", hints: pxe(11), installed: ALL, expect: "tftp ipxe-arm64.efi" },
    { name: "UEFI ARM64 missing is refused", hints: pxe(11), installed: DEBIAN, expect: "none" },
    {
      name: "UEFI HTTP x64",
      hints: httpClient(16),
      installed: ALL,
      expect: "http-client http://10.0.100.10/boot/ipxe/ipxe.efi",
    },
    {
      name: "UEFI HTTP ARM64",
      hints: httpClient(19),
      installed: ALL,
      expect: "http-client http://10.0.100.10/boot/ipxe/ipxe-arm64.efi",
    },
    { name: "ARM32 without a bootloader", hints: pxe(10), installed: ALL, expect: "none" },
    {
      name: "x86 HTTP with ipxe-i386.efi",
      hints: httpClient(15),
      installed: ALL,
      expect: "http-client http://10.0.100.10/boot/ipxe/ipxe-i386.efi",
    },
    { name: "unknown code", hints: pxe(42), installed: ALL, expect: "none" },
    { name: "not a PXE client", hints: { userClasses: [] }, installed: ALL, expect: "none" },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const d = decideBoot(c.hints, c.installed, BASE);
      const got =
        d.kind === "tftp"
          ? `tftp ${d.filename}`
          : d.kind === "http"
            ? `${d.httpClient ? "http-client" : "http"} ${d.url}`
            : "none";
      assert.equal(got, c.expect);
    });
  }

  it("explains a refusal with the code and what to install", () => {
    const d = decideBoot(pxe(11), DEBIAN, BASE);
    assert.equal(d.kind, "none");
    assert.match(d.kind === "none" ? d.reason : "", /architecture 11.*ipxe-arm64\.efi.*install/);
    const unknown = decideBoot(pxe(42), ALL, BASE);
    assert.match(unknown.kind === "none" ? unknown.reason : "", /architecture 42/);
  });

  it("UEFI HTTP boot firmware that trusts our CA gets an https:// bootloader; iPXE and PXE stay as they were", () => {
    const https = httpBootBase("10.0.100.10", 443, "https");
    assert.equal(https, "https://10.0.100.10/boot/ipxe");
    const firmware = decideBoot(httpClient(16), DEBIAN, BASE, FIRMWARE_TABLE, https);
    assert.equal(firmware.kind === "http" ? firmware.url : firmware.kind, "https://10.0.100.10/boot/ipxe/ipxe.efi");
    // A stock iPXE trusts no CA of ours: it keeps the plain entry script.
    const ipxe = decideBoot({ userClasses: ["iPXE"] }, DEBIAN, BASE, FIRMWARE_TABLE, https);
    assert.equal(ipxe.kind === "http" ? ipxe.url : ipxe.kind, "http://10.0.100.10/boot/ipxe/boot.ipxe");
    assert.equal(decideBoot(pxe(7), DEBIAN, BASE, FIRMWARE_TABLE, https).kind, "tftp");
    assert.equal(httpBootBase("10.0.0.1", 8443, "https"), "https://10.0.0.1:8443/boot/ipxe");
  });

  it("puts a non-default HTTP port in the URL", () => {
    assert.equal(httpBootBase("10.0.0.1", 8080), "http://10.0.0.1:8080/boot/ipxe");
  });

  it("labels firmware", () => {
    assert.equal(detectFirmware(pxe(7)), Firmware.EfiX64);
    assert.equal(detectFirmware({ userClasses: ["iPXE"] }), Firmware.Ipxe);
    assert.equal(detectFirmware({ userClasses: [] }), Firmware.NotPxe);
  });

  it("decides from the table it is given: plain data, so the DHCP server is handed it", () => {
    const withRiscv: FirmwareTable = new Map([
      ...FIRMWARE_TABLE,
      [25, { firmware: Firmware.Unknown, bootloaders: ["ipxe-riscv64.efi"], http: false, hint: "install it" }],
    ]);
    const d = decideBoot(pxe(25), new Set(["ipxe-riscv64.efi"]), BASE, withRiscv);
    assert.equal(d.kind === "tftp" ? d.filename : d.kind, "ipxe-riscv64.efi");
    assert.equal(decideBoot(pxe(25), new Set(["ipxe-riscv64.efi"]), BASE).kind, "none", "not in the shipped table");
  });
});

describe("Secure Boot (boot-chain secureBoot): Debian's signed shim instead of iPXE", () => {
  const SIGNED = new Set([...DEBIAN, "shimx64.efi", "grubx64.efi"]);
  const secure = { secureBoot: true };
  it("answers UEFI x64 PXE (7 and 9) with shim over TFTP", () => {
    for (const arch of [7, 9]) {
      const d = decideBoot(pxe(arch), SIGNED, BASE, FIRMWARE_TABLE, BASE, secure);
      assert.deepEqual(d, { kind: "tftp", firmware: Firmware.EfiX64, filename: "shimx64.efi" });
    }
  });
  it("keeps iPXE for machines not marked, and for BIOS (which has no Secure Boot)", () => {
    assert.deepEqual(decideBoot(pxe(7), SIGNED, BASE), {
      kind: "tftp",
      firmware: Firmware.EfiX64,
      filename: "ipxe.efi",
    });
    assert.deepEqual(decideBoot(pxe(0), SIGNED, BASE, FIRMWARE_TABLE, BASE, secure), {
      kind: "tftp",
      firmware: Firmware.Bios,
      filename: "undionly.kpxe",
    });
  });
  it("never falls back to iPXE when shim or grub is missing: it says what to install", () => {
    for (const installed of [DEBIAN, new Set([...DEBIAN, "shimx64.efi"])]) {
      const d = decideBoot(pxe(7), installed, BASE, FIRMWARE_TABLE, BASE, secure);
      assert.equal(d.kind, "none");
      assert.match(d.kind === "none" ? d.reason : "", /grubx64\.efi.*not installed.*shim-signed/);
    }
  });
  it("refuses UEFI HTTP boot (Debian's signed grub cannot fetch over HTTP) and names the way out", () => {
    const d = decideBoot(httpClient(16), SIGNED, BASE, FIRMWARE_TABLE, BASE, secure);
    assert.equal(d.kind, "none");
    assert.match(d.kind === "none" ? d.reason : "", /PXE boot/);
  });
  it("ARM64 asks for Debian's arm64 shim and grub", () => {
    const d = decideBoot(pxe(11), ALL, BASE, FIRMWARE_TABLE, BASE, secure);
    assert.match(d.kind === "none" ? d.reason : "", /shimaa64\.efi and grubaa64\.efi are not installed/);
    const ok = decideBoot(pxe(11), new Set(["shimaa64.efi", "grubaa64.efi"]), BASE, FIRMWARE_TABLE, BASE, secure);
    assert.deepEqual(ok, { kind: "tftp", firmware: Firmware.EfiArm64, filename: "shimaa64.efi" });
  });
  it("ARM64 UEFI HTTP boot (arch 19) with secureBoot: never ipxe-arm64.efi, told to PXE boot", () => {
    const installed = new Set(["ipxe-arm64.efi", "shimaa64.efi", "grubaa64.efi"]);
    const d = decideBoot(httpClient(19), installed, BASE, FIRMWARE_TABLE, BASE, secure);
    assert.equal(d.kind, "none");
    assert.match(d.kind === "none" ? d.reason : "", /efi-arm64-http has no signed boot chain.*PXE boot.*11/);
  });
});

describe("iPXE flavour (boot-chain ipxe)", () => {
  it("snponly.efi first when asked, on PXE and on HTTP boot; ipxe.efi when snponly.efi is not installed", () => {
    const chain = { secureBoot: false, flavour: "snponly.efi" as const };
    assert.deepEqual(decideBoot(pxe(7), ALL, BASE, FIRMWARE_TABLE, BASE, chain), {
      kind: "tftp",
      firmware: Firmware.EfiX64,
      filename: "snponly.efi",
    });
    const http = decideBoot(httpClient(16), ALL, BASE, FIRMWARE_TABLE, BASE, chain);
    assert.equal(http.kind === "http" && http.url, "http://10.0.100.10/boot/ipxe/snponly.efi");
    const fallback = decideBoot(pxe(7), new Set(["ipxe.efi"]), BASE, FIRMWARE_TABLE, BASE, chain);
    assert.equal(fallback.kind === "tftp" && fallback.filename, "ipxe.efi");
  });
  it("http: no PXE answer (the firmware goes on to HTTP boot), which gets ipxe.efi", () => {
    const chain = { secureBoot: false, flavour: "http" as const };
    const d = decideBoot(pxe(7), ALL, BASE, FIRMWARE_TABLE, BASE, chain);
    assert.equal(d.kind, "none");
    assert.match(d.kind === "none" ? d.reason : "", /UEFI HTTP boot/);
    const http = decideBoot(httpClient(16), ALL, BASE, FIRMWARE_TABLE, BASE, chain);
    assert.equal(http.kind === "http" && http.url, "http://10.0.100.10/boot/ipxe/ipxe.efi");
  });
  it("does not touch firmware without a choice (BIOS, ARM64)", () => {
    const chain = { secureBoot: false, flavour: "http" as const };
    assert.equal(decideBoot(pxe(0), ALL, BASE, FIRMWARE_TABLE, BASE, chain).kind, "tftp");
    assert.equal(decideBoot(pxe(11), ALL, BASE, FIRMWARE_TABLE, BASE, chain).kind, "tftp");
  });
});
