import { request as httpRequest, type IncomingMessage } from "node:http";
import { isIP, connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { normalizeMac } from "../config/primitives.js";
import { bootRequest, bootResult } from "./boot-override.js";
import {
  BmcError,
  type BmcClient,
  type BmcEndpoint,
  type BmcIdentity,
  type BmcTimeouts,
  type BootDevice,
  type BootDeviceResult,
  type BootOptions,
  type BootOverride,
  DEFAULT_BMC_TIMEOUTS,
  defaultBmcPort,
  type PowerAction,
  type PowerState,
} from "./client.js";

/**
 * Redfish (DMTF DSP0266) over HTTPS with node:http on a socket we open and check ourselves: a
 * BMC's certificate is self-signed almost always, so with `fingerprint` set it is accepted when its
 * sha256 matches and only then, and the request (with its credentials) is written only after that
 * check. HTTP Basic authentication (DSP0266 §13.3.3, which every service must accept): no session to
 * leak or expire, one request per operation step.
 */

type Json = Record<string, unknown>;

/** Largest answer read from a BMC (a ComputerSystem is a few KiB; a hostile one gets cut off). */
const MAX_BODY_BYTES = 1 << 20;

/** Our boot devices → `Boot.BootSourceOverrideTarget` (Redfish ComputerSystem schema). */
const OVERRIDE_TARGET: Readonly<Record<BootDevice, string>> = { pxe: "Pxe", disk: "Hdd", http: "UefiHttp" };

/**
 * Reset types to try for each action, best first, picked from the action's
 * `ResetType@Redfish.AllowableValues` (a BMC that lists none is taken to accept the first).
 */
const RESET_TYPES: Readonly<Record<PowerAction, readonly string[]>> = {
  on: ["On", "ForceOn"],
  off: ["ForceOff", "PushPowerButton"],
  cycle: ["PowerCycle", "ForceRestart"],
  reset: ["ForceRestart", "GracefulRestart"],
};

/** The first reset type the BMC allows for an action, or undefined. */
export function chooseResetType(action: PowerAction, allowable: readonly string[] | undefined): string | undefined {
  const candidates = RESET_TYPES[action];
  if (allowable === undefined) return candidates[0];
  return candidates.find((c) => allowable.includes(c));
}

/** `Boot` of a ComputerSystem as our `BootOverride`. */
export function decodeRedfishBoot(boot: Json | undefined): BootOverride {
  const target = typeof boot?.BootSourceOverrideTarget === "string" ? boot.BootSourceOverrideTarget : "None";
  const enabled = typeof boot?.BootSourceOverrideEnabled === "string" ? boot.BootSourceOverrideEnabled : "Disabled";
  const mode = typeof boot?.BootSourceOverrideMode === "string" ? boot.BootSourceOverrideMode : undefined;
  const device =
    enabled === "Disabled" || target === "None"
      ? "none"
      : ((Object.entries(OVERRIDE_TARGET).find(([, t]) => t === target)?.[0] as BootDevice | undefined) ?? "other");
  const override: BootOverride = {
    device,
    persistent: device !== "none" && enabled === "Continuous",
    raw: `BootSourceOverrideTarget=${target} Enabled=${enabled}${mode ? ` Mode=${mode}` : ""}`,
  };
  if (mode !== undefined) override.efi = mode === "UEFI";
  return override;
}

/**
 * The PXE-capable NIC MACs of a system's EthernetInterfaces. Skipped: the host interface to the BMC
 * itself (`Links.HostInterface`, DSP0270), and an empty or all-zero address, which real BMCs report
 * for a NIC whose firmware has not been read yet (the permanent address stands in when present).
 */
export function interfaceMacs(interfaces: Json[]): string[] {
  const macs = new Set<string>();
  for (const nic of interfaces) {
    const links = nic.Links as Json | undefined;
    if (links && typeof links === "object" && "HostInterface" in links) continue;
    for (const field of ["MACAddress", "PermanentMACAddress"]) {
      const value = nic[field];
      const mac = typeof value === "string" ? normalizeMac(value) : undefined;
      if (mac === undefined || mac === "00:00:00:00:00:00") continue;
      macs.add(mac);
      break;
    }
  }
  return [...macs];
}

/** sha256 fingerprint as lower-case hex without separators (`AB:CD:…` and `abcd…` are the same). */
export function normalizeFingerprint(text: string): string {
  return text.replace(/[:\s]/g, "").toLowerCase();
}

export class RedfishClient implements BmcClient {
  readonly protocol = "redfish" as const;
  private readonly timeouts: BmcTimeouts;
  private systemPath: string | undefined;

  constructor(
    private readonly endpoint: BmcEndpoint,
    options: Partial<BmcTimeouts> = {},
  ) {
    this.timeouts = {
      attemptMs: options.attemptMs ?? DEFAULT_BMC_TIMEOUTS.attemptMs,
      attempts: options.attempts ?? DEFAULT_BMC_TIMEOUTS.attempts,
    };
  }

  async powerStatus(): Promise<PowerState> {
    const system = await this.system();
    // PowerState: On, Off, PoweringOn, PoweringOff, Paused; a machine on its way up counts as on.
    return system.PowerState === "Off" || system.PowerState === "PoweringOff" ? "off" : "on";
  }

  async power(action: PowerAction): Promise<void> {
    const system = await this.system();
    const reset = (system.Actions as Json | undefined)?.["#ComputerSystem.Reset"] as Json | undefined;
    if (!reset || typeof reset.target !== "string")
      throw new BmcError("unsupported", `power ${action}: the system offers no ComputerSystem.Reset action`);
    const allowable = reset["ResetType@Redfish.AllowableValues"];
    const allowed = Array.isArray(allowable) ? allowable.filter((v): v is string => typeof v === "string") : undefined;
    // The contract's cycle from off is a plain power on (several BMCs refuse PowerCycle when off).
    const effective = action === "cycle" && system.PowerState === "Off" ? "on" : action;
    const resetType = chooseResetType(effective, allowed);
    if (resetType === undefined)
      throw new BmcError(
        "unsupported",
        `power ${action}: none of ${RESET_TYPES[effective].join(", ")} is among the BMC's reset types (${allowed?.join(", ")})`,
      );
    await this.call("POST", reset.target, `power ${action}`, { ResetType: resetType });
  }

  async setBootDevice(device: BootDevice, options?: BootOptions): Promise<BootDeviceResult> {
    const requested = bootRequest(device, options);
    const system = await this.system();
    const boot = (system.Boot as Json | undefined) ?? {};
    const target = OVERRIDE_TARGET[device];
    const allowable = boot["BootSourceOverrideTarget@Redfish.AllowableValues"];
    if (Array.isArray(allowable) && !allowable.includes(target))
      throw new BmcError(
        "unsupported",
        `boot device ${device}: the BMC does not offer ${target} (it offers ${allowable.join(", ")})`,
      );
    const patch: Json = {
      BootSourceOverrideTarget: target,
      BootSourceOverrideEnabled: requested.persistent ? "Continuous" : "Once",
    };
    // Only a BMC that has the property gets it (older ones refuse an unknown property outright), and
    // only when the firmware is known: a UEFI-only machine told "Legacy" would not boot at all.
    if ("BootSourceOverrideMode" in boot && requested.efi !== undefined)
      patch.BootSourceOverrideMode = requested.efi ? "UEFI" : "Legacy";
    await this.call("PATCH", this.systemPath!, `boot device ${device}`, { Boot: patch });
    return bootResult(requested, await this.getBootDevice());
  }

  async getBootDevice(): Promise<BootOverride> {
    return decodeRedfishBoot((await this.system()).Boot as Json | undefined);
  }

  async identity(): Promise<BmcIdentity> {
    const system = await this.system();
    const identity: BmcIdentity = { macs: [] };
    const uuid = typeof system.UUID === "string" ? system.UUID.toLowerCase() : "";
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(uuid)) identity.uuid = uuid;
    for (const field of ["SerialNumber", "Manufacturer", "Model"] as const) {
      const value = system[field];
      if (typeof value === "string" && value.trim() !== "") {
        const key = field === "SerialNumber" ? "serial" : field === "Manufacturer" ? "manufacturer" : "model";
        identity[key] = value.trim();
      }
    }
    const link = (system.EthernetInterfaces as Json | undefined)?.["@odata.id"];
    if (typeof link === "string") {
      const collection = await this.call("GET", link, "NIC list");
      const members = Array.isArray(collection.Members) ? collection.Members : [];
      const nics: Json[] = [];
      for (const member of members.slice(0, 64)) {
        const id = (member as Json)["@odata.id"];
        if (typeof id === "string") nics.push(await this.call("GET", id, "NIC"));
      }
      identity.macs = interfaceMacs(nics);
    }
    return identity;
  }

  /** The ComputerSystem (read fresh each time: power state and boot override change under us). */
  private async system(): Promise<Json> {
    if (this.systemPath === undefined) {
      const root = await this.call("GET", "/redfish/v1/", "service root");
      const systemsLink = (root.Systems as Json | undefined)?.["@odata.id"];
      if (typeof systemsLink !== "string") throw new BmcError("unsupported", "the Redfish service has no Systems");
      const systems = await this.call("GET", systemsLink, "system list");
      const first = Array.isArray(systems.Members)
        ? (systems.Members[0] as Json | undefined)?.["@odata.id"]
        : undefined;
      if (typeof first !== "string") throw new BmcError("unsupported", "the Redfish service lists no ComputerSystem");
      this.systemPath = first;
    }
    return this.call("GET", this.systemPath, "system");
  }

  /** One request with retries on unreachable/timeout (never for a refusal). */
  private async call(method: string, path: string, what: string, body?: Json): Promise<Json> {
    let last: BmcError | undefined;
    for (let attempt = 1; attempt <= this.timeouts.attempts; attempt++) {
      try {
        return await this.once(method, path, what, body);
      } catch (error) {
        if (!(error instanceof BmcError)) throw error;
        last = error;
        // A POST that timed out may have been carried out: resetting twice is worse than an error.
        if (method !== "GET" || (error.failure !== "unreachable" && error.failure !== "timeout")) throw error;
      }
    }
    throw last!;
  }

  private once(method: string, path: string, what: string, body?: Json): Promise<Json> {
    const endpoint = this.endpoint;
    const scheme = endpoint.scheme ?? "https";
    const port = endpoint.port ?? (scheme === "http" ? 80 : defaultBmcPort("redfish"));
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const authorization = `Basic ${Buffer.from(`${endpoint.username}:${endpoint.password}`).toString("base64")}`;
    return new Promise<Json>((resolve, reject) => {
      let settled = false;
      let connected = false;
      let socket: Socket | undefined;
      const finish = (error: BmcError | undefined, value?: Json) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket?.destroy();
        if (error) reject(error);
        else resolve(value ?? {});
      };
      const timer = setTimeout(
        () =>
          finish(
            new BmcError(
              connected ? "timeout" : "unreachable",
              connected
                ? `${what}: the BMC stopped answering (${this.timeouts.attemptMs} ms)`
                : `${what}: no connection to ${endpoint.address}:${port} within ${this.timeouts.attemptMs} ms`,
            ),
          ),
        this.timeouts.attemptMs,
      );
      const onSocketError = (error: NodeJS.ErrnoException) =>
        finish(socketError(error, what, endpoint.address, port, connected));

      const send = () => {
        connected = true;
        const req = httpRequest({
          method,
          path,
          host: endpoint.address,
          port,
          headers: {
            host: isIP(endpoint.address) === 6 ? `[${endpoint.address}]:${port}` : `${endpoint.address}:${port}`,
            authorization,
            accept: "application/json",
            "odata-version": "4.0",
            ...(payload ? { "content-type": "application/json", "content-length": String(payload.length) } : {}),
          },
          createConnection: () => socket!,
        });
        req.on("error", onSocketError);
        req.on("response", (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_BODY_BYTES)
              finish(new BmcError("failed", `${what}: the BMC's answer is larger than ${MAX_BODY_BYTES} bytes`));
            else chunks.push(chunk);
          });
          res.on("error", onSocketError);
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              if (text.trim() === "") return finish(undefined, {});
              try {
                const parsed: unknown = JSON.parse(text);
                if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed))
                  return finish(undefined, parsed as Json);
              } catch {
                // fall through
              }
              return finish(
                new BmcError("failed", `${what}: the BMC answered ${status} with something other than a JSON object`),
              );
            }
            finish(statusError(status, text, what, method, path));
          });
        });
        req.end(payload);
      };

      if (scheme === "http") {
        socket = netConnect({ host: endpoint.address, port });
        socket.once("connect", send);
      } else {
        const pinned = endpoint.fingerprint === undefined ? undefined : normalizeFingerprint(endpoint.fingerprint);
        const tls: TLSSocket = tlsConnect({
          host: endpoint.address,
          port,
          // SNI is for host names only (RFC 6066 §3).
          ...(isIP(endpoint.address) === 0 ? { servername: endpoint.address } : {}),
          // With a pin, the pin is the whole check: the chain of a self-signed BMC certificate
          // cannot verify. Without one the usual CA and name check applies.
          rejectUnauthorized: pinned === undefined,
        });
        socket = tls;
        tls.once("secureConnect", () => {
          if (pinned !== undefined) {
            const seen = normalizeFingerprint(tls.getPeerCertificate().fingerprint256 ?? "");
            if (seen !== pinned)
              return finish(
                new BmcError(
                  "certificate",
                  `${what}: the BMC's certificate (sha256 ${seen}) is not the pinned one (bmc.fingerprint); nothing was sent`,
                ),
              );
          }
          send();
        });
      }
      socket.on("error", onSocketError);
    });
  }
}

/** TLS verification failures Node reports by code (a name mismatch, an unknown or expired chain). */
const CERTIFICATE_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT_ALTNAME/;

function socketError(
  error: NodeJS.ErrnoException,
  what: string,
  address: string,
  port: number,
  connected: boolean,
): BmcError {
  const code = error.code ?? "";
  if (CERTIFICATE_CODES.test(code))
    return new BmcError(
      "certificate",
      `${what}: the BMC's certificate is not trusted (${code}); pin it with bmc.fingerprint (its sha256)`,
      { cause: error },
    );
  if (!connected || ["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN"].includes(code))
    return new BmcError("unreachable", `${what}: cannot reach ${address}:${port} (${code || error.message})`, {
      cause: error,
    });
  return new BmcError("timeout", `${what}: the connection broke mid-answer (${code || error.message})`, {
    cause: error,
  });
}

function statusError(status: number, text: string, what: string, method: string, path: string): BmcError {
  // Redfish errors carry `error.message` and `@Message.ExtendedInfo` (DSP0266 §9.6); a line of it helps.
  let message = "";
  try {
    const parsed = JSON.parse(text) as {
      error?: { message?: unknown; "@Message.ExtendedInfo"?: { Message?: unknown }[] };
    };
    const info = parsed.error?.["@Message.ExtendedInfo"]?.[0]?.Message;
    message = typeof info === "string" ? info : typeof parsed.error?.message === "string" ? parsed.error.message : "";
  } catch {
    // not JSON
  }
  const detail = `${method} ${path}: ${status}${message ? ` ${message.slice(0, 200)}` : ""}`;
  if (status === 401 || status === 403)
    return new BmcError("credentials", `${what}: the BMC refused the username or password (${detail})`);
  if (status === 404 || status === 405 || status === 501)
    return new BmcError("unsupported", `${what}: the BMC does not offer it (${detail})`);
  if (status === 503 || status === 504) return new BmcError("timeout", `${what}: the BMC is busy (${detail})`);
  return new BmcError("failed", `${what}: ${detail}`);
}
