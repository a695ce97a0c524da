import assert from "node:assert/strict";
import { test } from "node:test";
import { bootMismatch, bootRequest } from "./boot-override.js";
import { classifyIpmitoolFailure, decodeBootFlags, encodeBootFlags, ipmiGuidToUuid, parseRawBytes } from "./ipmi.js";
import { chooseResetType, decodeRedfishBoot, interfaceMacs, normalizeFingerprint } from "./redfish.js";

test("IPMI boot flags: encoded per v2.0 table 28-14 and decoded from a Get System Boot Options answer", () => {
  assert.deepEqual(encodeBootFlags("pxe", false, true), [0xa0, 0x04, 0, 0, 0]);
  assert.deepEqual(encodeBootFlags("disk", true, false), [0xc0, 0x08, 0, 0, 0]);
  assert.deepEqual(decodeBootFlags(parseRawBytes(" 01 05 e0 04 00 00 00\n")), {
    device: "pxe",
    persistent: true,
    efi: true,
    raw: "boot flags e0 04 00 00 00",
  });
  assert.equal(decodeBootFlags([1, 5, 0, 0, 0, 0, 0]).device, "none");
  assert.equal(decodeBootFlags([1, 5, 0x80, 0x14, 0, 0, 0]).device, "other");
  assert.throws(() => parseRawBytes("Chassis Power is on"), /unexpected ipmitool output/);
});

test("the read-back comparison names what the BMC did not keep", () => {
  const requested = bootRequest("pxe", { efi: true });
  assert.equal(bootMismatch(requested, { device: "pxe", persistent: false, efi: true, raw: "" }), undefined);
  assert.match(
    bootMismatch(requested, { device: "pxe", persistent: false, efi: false, raw: "x" }) ?? "",
    /legacy mode/,
  );
  assert.match(bootMismatch(requested, { device: "none", persistent: false, raw: "x" }) ?? "", /device none/);
  // A BMC that does not report a mode is not a mismatch on the mode.
  assert.equal(bootMismatch(requested, { device: "pxe", persistent: false, raw: "" }), undefined);
});

test("ipmitool failures: a wrong password, an unknown user, a dead address, an unsupported command", () => {
  assert.equal(
    classifyIpmitoolFailure("> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session", "x")
      .failure,
    "credentials",
  );
  assert.equal(
    classifyIpmitoolFailure("RAKP 2 message indicates an error : unauthorized name", "x").failure,
    "credentials",
  );
  assert.equal(
    classifyIpmitoolFailure("Get Auth Capabilities error\nError: Unable to establish IPMI v2 / RMCP+ session", "x")
      .failure,
    "unreachable",
  );
  assert.equal(
    classifyIpmitoolFailure(
      "Unable to send RAW command (channel=0x0 netfn=0x0 lun=0x0 cmd=0x9 rsp=0xc1): Invalid command",
      "x",
    ).failure,
    "unsupported",
  );
  assert.equal(
    classifyIpmitoolFailure("Unable to send RAW command (rsp=0xd4): Insufficient privilege level", "x").failure,
    "credentials",
  );
  assert.equal(classifyIpmitoolFailure("something else", "x").code, "BMC_FAILED");
});

test("the IPMI system GUID is sent least significant byte first", () => {
  assert.equal(
    ipmiGuidToUuid([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]),
    "efcdab89-6745-2301-efcd-ab8967452301",
  );
});

test("Redfish: reset types from AllowableValues, Boot decoded, NIC MACs filtered, fingerprints compared", () => {
  assert.equal(chooseResetType("cycle", ["On", "ForceOff", "ForceRestart"]), "ForceRestart");
  assert.equal(chooseResetType("cycle", ["PowerCycle", "ForceRestart"]), "PowerCycle");
  assert.equal(chooseResetType("on", undefined), "On");
  assert.equal(chooseResetType("off", ["On"]), undefined);
  assert.equal(
    decodeRedfishBoot({ BootSourceOverrideTarget: "Pxe", BootSourceOverrideEnabled: "Disabled" }).device,
    "none",
  );
  assert.equal(
    decodeRedfishBoot({ BootSourceOverrideTarget: "UefiHttp", BootSourceOverrideEnabled: "Continuous" }).persistent,
    true,
  );
  assert.equal(
    decodeRedfishBoot({ BootSourceOverrideTarget: "Cd", BootSourceOverrideEnabled: "Once" }).device,
    "other",
  );
  assert.equal(decodeRedfishBoot(undefined).efi, undefined);
  assert.deepEqual(
    interfaceMacs([
      { MACAddress: "" },
      { MACAddress: "00:00:00:00:00:00", PermanentMACAddress: "52:54:00:AA:BB:01" },
      { MACAddress: "52:54:00:aa:bb:02" },
      { MACAddress: "52:54:00:aa:bb:02" },
      { MACAddress: "aa:bb:cc:dd:ee:fe", Links: { HostInterface: {} } },
      { MACAddress: null },
    ]),
    ["52:54:00:aa:bb:01", "52:54:00:aa:bb:02"],
  );
  assert.equal(normalizeFingerprint("AB:cd:01"), "abcd01");
});
