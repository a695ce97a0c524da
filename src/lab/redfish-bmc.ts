import { spawnSync } from "node:child_process";
import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import { connect } from "node:net";
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { LabBmc } from "./lab-bmc.js";
import type { LabMachine } from "./machines.js";

/**
 * The lab's Redfish BMC: a Node HTTP server speaking the subset of DMTF Redfish (DSP0266, schema
 * ComputerSystem v1) that a provisioning client uses — the service root, one ComputerSystem per
 * listener with PowerState, Boot override and EthernetInterfaces, `ComputerSystem.Reset`, and
 * sessions or basic auth. Each machine gets its own listener (address:port), as each real server
 * has its own BMC. Reset and power map onto the machine's QEMU: started with the arguments of the
 * boot device the override says, stopped through QMP (`quit`, `system_powerdown`).
 *
 * The request handling is a pure function of (request, system state) → (reply, effect); `serve`
 * applies the effects.
 */

export interface RedfishSystemSpec {
  id: string;
  mac: string;
  uuid: string;
  uefi: boolean;
  address: string;
  port: number;
  username: string;
  passwordFile: string;
  pidFile: string;
  bootFile: string;
  qmpSocket: string;
  argsFiles: { pxe: string; disk: string };
  qemuLog: string;
}

export interface RedfishBmcSpec {
  systems: RedfishSystemSpec[];
}

/** A UUID for a lab machine's SMBIOS-style identity, from its MAC (QEMU's own is all zeros). */
function labSystemUuid(mac: string): string {
  const hex = `0000c0de${mac.replace(/:/g, "")}0000000000000000`.slice(0, 32);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

export function redfishSystemSpec(machine: LabMachine & { bmc?: LabBmc }): RedfishSystemSpec {
  const bmc = machine.bmc;
  if (bmc?.type !== "redfish") throw new Error(`${machine.name} has no Redfish lab BMC`);
  return {
    id: machine.name,
    mac: machine.mac,
    uuid: labSystemUuid(machine.mac),
    uefi: machine.firmware !== "bios-ipxe-rom",
    address: bmc.address,
    port: bmc.port,
    username: bmc.username,
    passwordFile: bmc.passwordFile,
    pidFile: bmc.pidFile,
    bootFile: bmc.bootFile,
    qmpSocket: bmc.qmpSocket,
    argsFiles: bmc.argsFiles,
    qemuLog: bmc.qemuLog,
  };
}

export const RESET_TYPES = ["On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle"] as const;
export type ResetType = (typeof RESET_TYPES)[number];
export const BOOT_TARGETS = ["None", "Pxe", "Hdd", "UefiHttp"] as const;
export type BootTarget = (typeof BOOT_TARGETS)[number];
export const BOOT_ENABLED = ["Disabled", "Once", "Continuous"] as const;
export type BootEnabled = (typeof BOOT_ENABLED)[number];

export interface SystemState {
  powerOn: boolean;
  bootEnabled: BootEnabled;
  bootTarget: BootTarget;
}

export interface RedfishRequest {
  method: string;
  /** The path without its query. */
  path: string;
  /** True when basic auth or X-Auth-Token checked out (the edge checks, the core decides what needs it). */
  authenticated: boolean;
  body: unknown;
}

export type RedfishEffect =
  | { kind: "reset"; type: ResetType }
  | { kind: "boot"; enabled: BootEnabled; target: BootTarget }
  | { kind: "login"; username: unknown; password: unknown }
  | { kind: "logout"; token: string };

export interface RedfishReply {
  status: number;
  body?: unknown;
  effect?: RedfishEffect;
}

function redfishError(status: number, messageId: string, message: string): RedfishReply {
  // DSP0266 §9.6 error responses: an `error` object with a code and extended info.
  return {
    status,
    body: {
      error: {
        code: `Base.1.8.${messageId}`,
        message,
        "@Message.ExtendedInfo": [{ MessageId: `Base.1.8.${messageId}`, Message: message }],
      },
    },
  };
}

function oneOf<T extends string>(list: readonly T[], value: unknown): value is T {
  return typeof value === "string" && (list as readonly string[]).includes(value);
}

/** The Redfish resources of one BMC with one system, and what a request changes. */
export function handleRedfish(request: RedfishRequest, spec: RedfishSystemSpec, state: SystemState): RedfishReply {
  const system = `/redfish/v1/Systems/${spec.id}`;
  const path = request.path.replace(/\/+$/, "") || "/";
  const { method } = request;
  // The service root is readable without credentials (DSP0266 §13.3.4): clients find the rest there.
  if (path === "/redfish" && method === "GET") return { status: 200, body: { v1: "/redfish/v1/" } };
  if (path === "/redfish/v1" && method === "GET")
    return {
      status: 200,
      body: {
        "@odata.id": "/redfish/v1",
        "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
        Id: "RootService",
        Name: "Centra PXE lab BMC",
        RedfishVersion: "1.8.0",
        UUID: spec.uuid,
        Systems: { "@odata.id": "/redfish/v1/Systems" },
        SessionService: { "@odata.id": "/redfish/v1/SessionService" },
        Links: { Sessions: { "@odata.id": "/redfish/v1/SessionService/Sessions" } },
      },
    };
  if (path === "/redfish/v1/SessionService/Sessions" && method === "POST") {
    const body = (request.body ?? {}) as Record<string, unknown>;
    return { status: 201, effect: { kind: "login", username: body.UserName, password: body.Password } };
  }
  if (!request.authenticated) return redfishError(401, "NoValidSession", "authentication required");
  const session = /^\/redfish\/v1\/SessionService\/Sessions\/([\w-]+)$/.exec(path);
  if (session && method === "DELETE") return { status: 204, effect: { kind: "logout", token: session[1]! } };
  if (path === "/redfish/v1/Systems" && method === "GET")
    return {
      status: 200,
      body: {
        "@odata.id": "/redfish/v1/Systems",
        "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
        Name: "Computer System Collection",
        "Members@odata.count": 1,
        Members: [{ "@odata.id": system }],
      },
    };
  if (path === system && method === "GET") return { status: 200, body: computerSystem(spec, state) };
  if (path === system && method === "PATCH") return patchBoot(request.body, state);
  if (path === `${system}/Actions/ComputerSystem.Reset` && method === "POST") {
    const type = (request.body as Record<string, unknown> | null)?.ResetType;
    if (!oneOf(RESET_TYPES, type))
      return redfishError(
        400,
        "ActionParameterValueNotInList",
        `ResetType ${JSON.stringify(type)} is not one of ${RESET_TYPES.join(", ")}`,
      );
    return { status: 204, effect: { kind: "reset", type } };
  }
  if (path === `${system}/EthernetInterfaces` && method === "GET")
    return {
      status: 200,
      body: {
        "@odata.id": `${system}/EthernetInterfaces`,
        "@odata.type": "#EthernetInterfaceCollection.EthernetInterfaceCollection",
        Name: "Ethernet Interface Collection",
        "Members@odata.count": 1,
        Members: [{ "@odata.id": `${system}/EthernetInterfaces/nic0` }],
      },
    };
  if (path === `${system}/EthernetInterfaces/nic0` && method === "GET")
    return {
      status: 200,
      body: {
        "@odata.id": `${system}/EthernetInterfaces/nic0`,
        "@odata.type": "#EthernetInterface.v1_4_0.EthernetInterface",
        Id: "nic0",
        Name: "virtio-net",
        MACAddress: spec.mac.toUpperCase(),
        PermanentMACAddress: spec.mac.toUpperCase(),
      },
    };
  if ([system, "/redfish/v1/Systems", `${system}/EthernetInterfaces`].includes(path))
    return redfishError(405, "OperationNotAllowed", `${method} is not allowed on ${path}`);
  return redfishError(404, "ResourceMissingAtURI", `no resource at ${path}`);
}

function computerSystem(spec: RedfishSystemSpec, state: SystemState): Record<string, unknown> {
  const system = `/redfish/v1/Systems/${spec.id}`;
  return {
    "@odata.id": system,
    "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
    Id: spec.id,
    Name: spec.id,
    SystemType: "Virtual",
    Manufacturer: "QEMU",
    Model: "Centra PXE lab machine",
    SerialNumber: `LAB-${spec.mac.replace(/:/g, "").toUpperCase()}`,
    UUID: spec.uuid,
    PowerState: state.powerOn ? "On" : "Off",
    Boot: {
      BootSourceOverrideEnabled: state.bootEnabled,
      BootSourceOverrideTarget: state.bootTarget,
      "BootSourceOverrideTarget@Redfish.AllowableValues": BOOT_TARGETS,
      BootSourceOverrideMode: spec.uefi ? "UEFI" : "Legacy",
    },
    EthernetInterfaces: { "@odata.id": `${system}/EthernetInterfaces` },
    Actions: {
      "#ComputerSystem.Reset": {
        target: `${system}/Actions/ComputerSystem.Reset`,
        "ResetType@Redfish.AllowableValues": RESET_TYPES,
      },
    },
  };
}

function patchBoot(body: unknown, state: SystemState): RedfishReply {
  const boot = (body as { Boot?: Record<string, unknown> } | null)?.Boot;
  if (!boot || typeof boot !== "object")
    return redfishError(
      400,
      "PropertyMissing",
      "only Boot (BootSourceOverrideEnabled, BootSourceOverrideTarget) can be changed",
    );
  const enabled = boot.BootSourceOverrideEnabled ?? state.bootEnabled;
  const target = boot.BootSourceOverrideTarget ?? state.bootTarget;
  if (!oneOf(BOOT_ENABLED, enabled))
    return redfishError(
      400,
      "PropertyValueNotInList",
      `BootSourceOverrideEnabled ${JSON.stringify(enabled)} is not one of ${BOOT_ENABLED.join(", ")}`,
    );
  if (!oneOf(BOOT_TARGETS, target))
    return redfishError(
      400,
      "PropertyValueNotInList",
      `BootSourceOverrideTarget ${JSON.stringify(target)} is not one of ${BOOT_TARGETS.join(", ")}`,
    );
  return { status: 204, effect: { kind: "boot", enabled, target } };
}

/** The boot device a power-on uses: the override while it is enabled, else the disk (an installed machine's own order). */
export function bootDeviceAtPowerOn(state: SystemState): "pxe" | "disk" {
  if (state.bootEnabled === "Disabled") return "disk";
  return state.bootTarget === "Pxe" || state.bootTarget === "UefiHttp" ? "pxe" : "disk";
}

/** After a power-on: a `Once` override is used up (DSP2046 ComputerSystem.BootSourceOverrideEnabled). */
export function afterPowerOn(state: SystemState): SystemState {
  return state.bootEnabled === "Once" ? { ...state, bootEnabled: "Disabled", bootTarget: "None" } : state;
}

// ---- the edge: QEMU, QMP and the listeners ----

function qemuPid(spec: RedfishSystemSpec): number | undefined {
  try {
    const pid = Number(readFileSync(spec.pidFile, "utf8").trim());
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("qemu-system") ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** One QMP command (QEMU's QMP spec: greeting, qmp_capabilities, command), answered or the socket closed. */
function qmp(socket: string, command: string, timeoutMs = 5_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const conn = connect(socket);
    let buffer = "";
    let sent = false;
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`QMP ${command}: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (error?: Error) => {
      clearTimeout(timer);
      conn.destroy();
      if (error) reject(error);
      else resolve();
    };
    conn.on("error", (error) => done(error));
    // `quit` may close the socket before its answer arrives: the command was taken.
    conn.on("close", () => (sent ? done() : done(new Error(`QMP ${command}: closed before the command`))));
    conn.on("data", (chunk) => {
      buffer += chunk.toString("utf8");
      for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const message = JSON.parse(line) as { QMP?: unknown; return?: unknown; error?: { desc?: string } };
        if (message.QMP) conn.write(`${JSON.stringify({ execute: "qmp_capabilities", id: "caps" })}\n`);
        else if ((message as { id?: string }).id === "caps") {
          sent = true;
          conn.write(`${JSON.stringify({ execute: command, id: "cmd" })}\n`);
        } else if ((message as { id?: string }).id === "cmd")
          done(message.error ? new Error(`QMP ${command}: ${message.error.desc}`) : undefined);
      }
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function powerOff(spec: RedfishSystemSpec, how: "quit" | "system_powerdown"): Promise<void> {
  const pid = qemuPid(spec);
  if (pid === undefined) return;
  try {
    await qmp(spec.qmpSocket, how);
  } catch {
    if (how === "quit") process.kill(pid, "SIGTERM");
  }
  if (how === "system_powerdown") return;
  for (let i = 0; i < 50 && qemuPid(spec) !== undefined; i++) await sleep(100);
  if (qemuPid(spec) !== undefined) process.kill(pid, "SIGKILL");
  rmSync(spec.pidFile, { force: true });
}

function powerOn(spec: RedfishSystemSpec, device: "pxe" | "disk"): void {
  if (qemuPid(spec) !== undefined) return;
  writeFileSync(spec.bootFile, `${device === "pxe" ? "pxe" : "default"}\n`);
  const args = readFileSync(spec.argsFiles[device], "utf8").split("\n").filter(Boolean);
  const log = openSync(spec.qemuLog, "a");
  try {
    // -daemonize (in the arguments): this returns once QEMU runs, with its pid in pidFile.
    const result = spawnSync("qemu-system-x86_64", args, { stdio: ["ignore", log, log], timeout: 30_000 });
    if (result.status !== 0) throw new Error(`QEMU did not start (status ${result.status}); see ${spec.qemuLog}`);
  } finally {
    closeSync(log);
  }
}

function readBody(request: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > 64 * 1024) request.destroy(new Error("body too large"));
      else chunks.push(chunk);
    });
    request.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      try {
        resolve(text ? JSON.parse(text) : undefined);
      } catch {
        resolve(Symbol.for("invalid-json"));
      }
    });
    request.on("error", reject);
  });
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Serve every system of `spec` on its own listener until the process ends. */
export async function serveRedfishBmc(spec: RedfishBmcSpec, log: (line: string) => void): Promise<void> {
  for (const system of spec.systems) {
    const password = readFileSync(system.passwordFile, "utf8").trim();
    const sessions = new Set<string>();
    let state: SystemState = { powerOn: false, bootEnabled: "Disabled", bootTarget: "None" };
    // One operation at a time per BMC, as real BMCs queue them: a reset never races a power-on.
    let queue: Promise<unknown> = Promise.resolve();
    const apply = async (effect: RedfishEffect): Promise<void> => {
      if (effect.kind === "boot") state = { ...state, bootEnabled: effect.enabled, bootTarget: effect.target };
      if (effect.kind !== "reset") return;
      const start = () => {
        powerOn(system, bootDeviceAtPowerOn(state));
        state = afterPowerOn(state);
      };
      switch (effect.type) {
        case "On":
          if (qemuPid(system) === undefined) start();
          break;
        case "ForceOff":
          await powerOff(system, "quit");
          break;
        case "GracefulShutdown":
          await powerOff(system, "system_powerdown");
          break;
        // QEMU runs with -no-reboot (a guest reboot ends it), so a reset is a stop and a start; the
        // start is also where a pending boot override takes effect, as at a real machine's POST.
        case "ForceRestart":
        case "PowerCycle":
          await powerOff(system, "quit");
          start();
          break;
      }
    };
    const server = createServer((request: IncomingMessage, response: ServerResponse) => {
      void (async () => {
        const body = await readBody(request);
        const reply = (status: number, json?: unknown, headers: Record<string, string> = {}) => {
          response.writeHead(status, {
            ...(json !== undefined ? { "content-type": "application/json" } : {}),
            "odata-version": "4.0",
            ...headers,
          });
          response.end(json !== undefined ? JSON.stringify(json) : undefined);
        };
        if (body === Symbol.for("invalid-json")) {
          reply(400, { error: { code: "Base.1.8.MalformedJSON", message: "the body is not JSON" } });
          return;
        }
        const token = request.headers["x-auth-token"];
        const basic = /^Basic (.+)$/i.exec(request.headers.authorization ?? "");
        const [user, ...rest] = basic ? Buffer.from(basic[1]!, "base64").toString("utf8").split(":") : [];
        const authenticated =
          (typeof token === "string" && sessions.has(token)) ||
          (user === system.username && sameSecret(rest.join(":"), password));
        state = { ...state, powerOn: qemuPid(system) !== undefined };
        const path = new URL(request.url ?? "/", "http://bmc").pathname;
        const result = handleRedfish({ method: request.method ?? "GET", path, authenticated, body }, system, state);
        const effect = result.effect;
        if (effect?.kind === "login") {
          if (
            effect.username !== system.username ||
            typeof effect.password !== "string" ||
            !sameSecret(effect.password, password)
          ) {
            reply(401, { error: { code: "Base.1.8.NoValidSession", message: "bad credentials" } });
            return;
          }
          const session = randomBytes(16).toString("hex");
          sessions.add(session);
          const location = `/redfish/v1/SessionService/Sessions/${session}`;
          reply(
            201,
            { "@odata.id": location, Id: session, UserName: system.username },
            { "x-auth-token": session, location },
          );
          return;
        }
        if (effect?.kind === "logout") sessions.delete(effect.token);
        if (effect && effect.kind !== "logout") {
          const run = queue.then(() => apply(effect));
          queue = run.catch(() => {});
          try {
            await run;
            log(
              `${system.id}: ${effect.kind === "reset" ? `reset ${effect.type}` : `boot ${effect.enabled} ${effect.target}`}`,
            );
          } catch (error) {
            log(`${system.id}: ${effect.kind} failed: ${(error as Error).message}`);
            reply(500, { error: { code: "Base.1.8.InternalError", message: (error as Error).message } });
            return;
          }
        }
        reply(result.status, result.body);
      })().catch((error: unknown) => {
        log(`${system.id}: ${(error as Error).message}`);
        if (!response.headersSent) response.writeHead(500).end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(system.port, system.address, () => resolve());
    });
    log(`${system.id}: Redfish BMC listening on http://${system.address}:${system.port}/redfish/v1`);
  }
}
