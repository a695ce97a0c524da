import assert from "node:assert/strict";
import { test } from "node:test";
import { labBmcPlan } from "./lab-bmc.js";
import { SEED_LAB_MACHINES } from "./lab-config.js";
import {
  type RedfishRequest,
  type SystemState,
  afterPowerOn,
  bootDeviceAtPowerOn,
  handleRedfish,
  redfishSystemSpec,
} from "./redfish-bmc.js";

const machine = SEED_LAB_MACHINES[0]!;
const spec = redfishSystemSpec({ ...machine, bmc: labBmcPlan(machine, 0, "redfish", "/lab/bmc", "10.0.100.10") });
const off: SystemState = { powerOn: false, bootEnabled: "Disabled", bootTarget: "None" };
const request = (method: string, path: string, body?: unknown, authenticated = true): RedfishRequest => ({
  method,
  path,
  authenticated,
  body,
});

test("the service root is open; everything else needs a session or basic auth", () => {
  assert.equal(handleRedfish(request("GET", "/redfish/v1/", undefined, false), spec, off).status, 200);
  const refused = handleRedfish(request("GET", "/redfish/v1/Systems", undefined, false), spec, off);
  assert.equal(refused.status, 401);
  assert.match(JSON.stringify(refused.body), /NoValidSession/);
  const login = handleRedfish(
    request("POST", "/redfish/v1/SessionService/Sessions", { UserName: "admin", Password: "x" }, false),
    spec,
    off,
  );
  assert.deepEqual(login.effect, { kind: "login", username: "admin", password: "x" });
});

test("the system: power state, boot override with its allowable values, the reset action, the NIC's MAC", () => {
  const collection = handleRedfish(request("GET", "/redfish/v1/Systems"), spec, off).body as {
    Members: { "@odata.id": string }[];
  };
  assert.deepEqual(collection.Members, [{ "@odata.id": "/redfish/v1/Systems/node01" }]);
  const system = handleRedfish(request("GET", "/redfish/v1/Systems/node01"), spec, off).body as {
    PowerState: string;
    UUID: string;
    Boot: unknown;
    Actions: Record<string, Record<string, string[]>>;
  };
  assert.equal(system.PowerState, "Off");
  assert.equal(system.UUID, spec.uuid);
  assert.deepEqual(system.Boot, {
    BootSourceOverrideEnabled: "Disabled",
    BootSourceOverrideTarget: "None",
    "BootSourceOverrideTarget@Redfish.AllowableValues": ["None", "Pxe", "Hdd", "UefiHttp"],
    BootSourceOverrideMode: "Legacy",
  });
  assert.ok(system.Actions["#ComputerSystem.Reset"]?.["ResetType@Redfish.AllowableValues"]?.includes("PowerCycle"));
  const nic = handleRedfish(request("GET", "/redfish/v1/Systems/node01/EthernetInterfaces/nic0"), spec, off)
    .body as Record<string, string>;
  assert.equal(nic.MACAddress, "52:54:00:12:34:56".toUpperCase());
});

test("PATCH Boot and POST Reset become effects; bad values are refused with the allowed ones", () => {
  const patch = handleRedfish(
    request("PATCH", "/redfish/v1/Systems/node01", {
      Boot: { BootSourceOverrideTarget: "Pxe", BootSourceOverrideEnabled: "Once" },
    }),
    spec,
    off,
  );
  assert.equal(patch.status, 204);
  assert.deepEqual(patch.effect, { kind: "boot", enabled: "Once", target: "Pxe" });
  const badTarget = handleRedfish(
    request("PATCH", "/redfish/v1/Systems/node01", { Boot: { BootSourceOverrideTarget: "Floppy" } }),
    spec,
    off,
  );
  assert.equal(badTarget.status, 400);
  assert.match(JSON.stringify(badTarget.body), /PropertyValueNotInList.*Pxe/);
  const reset = handleRedfish(
    request("POST", "/redfish/v1/Systems/node01/Actions/ComputerSystem.Reset", { ResetType: "ForceRestart" }),
    spec,
    off,
  );
  assert.deepEqual(reset.effect, { kind: "reset", type: "ForceRestart" });
  const badReset = handleRedfish(
    request("POST", "/redfish/v1/Systems/node01/Actions/ComputerSystem.Reset", { ResetType: "Nmi" }),
    spec,
    off,
  );
  assert.equal(badReset.status, 400);
  assert.equal(handleRedfish(request("GET", "/redfish/v1/Systems/node02"), spec, off).status, 404);
  assert.equal(handleRedfish(request("DELETE", "/redfish/v1/Systems/node01"), spec, off).status, 405);
});

test("a power-on boots the override while it is enabled; Once is used up, Continuous stays", () => {
  assert.equal(bootDeviceAtPowerOn(off), "disk");
  const once: SystemState = { ...off, bootEnabled: "Once", bootTarget: "Pxe" };
  assert.equal(bootDeviceAtPowerOn(once), "pxe");
  assert.deepEqual(afterPowerOn(once), off);
  const always: SystemState = { ...off, bootEnabled: "Continuous", bootTarget: "UefiHttp" };
  assert.equal(bootDeviceAtPowerOn(always), "pxe");
  assert.deepEqual(afterPowerOn(always), always);
  assert.equal(bootDeviceAtPowerOn({ ...off, bootEnabled: "Once", bootTarget: "Hdd" }), "disk");
});
