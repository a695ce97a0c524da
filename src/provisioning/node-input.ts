import { inSubnet, normalizeMac, parseIpv4 } from "../config/primitives.js";
import type { Config } from "../config/schema.js";
import { isVersionName as isPlainName } from "../files/state-dir.js";
import { type BmcInput, parseBmcInput } from "./bmc-settings.js";
import { ValidationError, type FieldProblem } from "./errors.js";

/**
 * A node's writable fields as the API and CLI send them, checked all at once so one 400 names
 * every bad field and why. `null` clears a field on update.
 */
export interface NodeChanges {
  macs?: string[];
  profile?: string | null;
  hostname?: string | null;
  ipAddress?: string | null;
  uuid?: string | null;
  imageVersion?: string | null;
  labels?: Record<string, string>;
  /** Set only by discovery through the BMC (the API takes no serial: firmware reports it). */
  serial?: string | null;
  /** The node's BMC (issue 13); `null` removes it. Its password is sealed before it is stored. */
  bmc?: BmcInput | null;
}

const FIELDS = ["macs", "mac", "profile", "hostname", "ipAddress", "uuid", "imageVersion", "labels", "bmc"] as const;

/** RFC 1123 host names, dotted or not, as the config schema accepts them. */
const HOSTNAME =
  /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
/** SMBIOS UUIDs as iPXE prints `${uuid}`. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Label keys in the Kubernetes spirit: short, no spaces, usable in a query string. */
const LABEL_KEY = /^[a-zA-Z0-9]([a-zA-Z0-9._/-]{0,62}[a-zA-Z0-9])?$/;

/**
 * Parse a create (`mode: "create"`: at least one MAC) or an update body against the config in
 * force (profiles, DHCP subnets). Throws ValidationError listing every problem.
 */
export function parseNodeChanges(body: unknown, mode: "create" | "update", config: Config): NodeChanges {
  const problems: FieldProblem[] = [];
  const problem = (field: string, message: string) => problems.push({ field, message });
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ValidationError([{ field: "(body)", message: "must be a JSON object" }]);
  }
  const input = body as Record<string, unknown>;
  const changes: NodeChanges = {};

  for (const key of Object.keys(input)) {
    if (!(FIELDS as readonly string[]).includes(key)) problem(key, `unknown field (known: ${FIELDS.join(", ")})`);
  }

  // MACs: `mac` is shorthand for a one-element `macs`.
  if (input.mac !== undefined && input.macs !== undefined) problem("mac", "give either mac or macs, not both");
  const rawMacs = input.macs !== undefined ? input.macs : input.mac !== undefined ? [input.mac] : undefined;
  const macField = input.macs !== undefined ? "macs" : "mac";
  if (rawMacs !== undefined) {
    if (!Array.isArray(rawMacs) || rawMacs.length === 0) {
      problem(macField, "must be a non-empty list of MAC addresses");
    } else {
      const macs: string[] = [];
      rawMacs.forEach((raw, i) => {
        const field = macField === "macs" ? `macs[${i}]` : "mac";
        const mac = typeof raw === "string" ? normalizeMac(raw) : undefined;
        if (mac === undefined)
          problem(field, `${JSON.stringify(raw)} is not a MAC address (expected six hex pairs like 52:54:00:12:34:56)`);
        else if (macs.includes(mac)) problem(field, `${mac} is listed twice`);
        else macs.push(mac);
      });
      changes.macs = macs;
    }
  } else if (mode === "create" && input.bmc === undefined) {
    // Without MACs a node needs a BMC to discover them through (Redfish EthernetInterfaces).
    problem("macs", "is required: at least one MAC address of the machine (or a Redfish bmc to read them from)");
  }

  const text = (
    field: keyof NodeChanges,
    check: (value: string) => string | undefined,
    normalise: (value: string) => string = (v) => v,
  ) => {
    const raw = input[field];
    if (raw === undefined) return;
    if (raw === null) {
      if (mode === "create") problem(field, "must not be null when creating a node (leave it out)");
      else (changes as Record<string, unknown>)[field] = null;
      return;
    }
    if (typeof raw !== "string") return problem(field, `must be a string, got ${typeof raw}`);
    const why = check(raw);
    if (why !== undefined) return problem(field, why);
    (changes as Record<string, unknown>)[field] = normalise(raw);
  };

  text("profile", (p) =>
    Object.hasOwn(config.profiles, p)
      ? undefined
      : `unknown profile ${JSON.stringify(p)} (defined: ${Object.keys(config.profiles).join(", ") || "none"})`,
  );
  text("hostname", (h) =>
    HOSTNAME.test(h)
      ? undefined
      : `${JSON.stringify(h)} is not a valid hostname (letters, digits and '-', labels of at most 63 characters)`,
  );
  text("ipAddress", (a) => checkFixedAddress(a, config));
  text(
    "uuid",
    (u) =>
      UUID.test(u.toLowerCase()) ? undefined : `${JSON.stringify(u)} is not an SMBIOS UUID (8-4-4-4-12 hex digits)`,
    (u) => u.toLowerCase(),
  );
  text("imageVersion", (v) =>
    isPlainName(v)
      ? undefined
      : `${JSON.stringify(v)} is not a version name (letters, digits, '.', '_', '-'; not "current")`,
  );

  if (input.labels !== undefined) {
    const labels = input.labels;
    if (typeof labels !== "object" || labels === null || Array.isArray(labels)) {
      problem("labels", 'must be an object of string values, e.g. {"rack": "a1"}');
    } else {
      const clean: Record<string, string> = {};
      for (const [key, value] of Object.entries(labels as Record<string, unknown>)) {
        if (!LABEL_KEY.test(key))
          problem(
            `labels.${key}`,
            "label keys are 1-64 letters, digits, '.', '_', '/', '-', starting and ending with a letter or digit",
          );
        else if (typeof value !== "string" || value.length > 256)
          problem(`labels.${key}`, "must be a string of at most 256 characters");
        else clean[key] = value;
      }
      changes.labels = clean;
    }
  }

  if (input.bmc === null) {
    if (mode === "create") problem("bmc", "must not be null when creating a node (leave it out)");
    else changes.bmc = null;
  } else if (input.bmc !== undefined) {
    const bmc = parseBmcInput(input.bmc, problem);
    if (bmc !== undefined) changes.bmc = bmc;
  }

  if (problems.length) throw new ValidationError(problems);
  return changes;
}

/** A fixed address must be usable by DHCP: inside a served subnet, outside every dynamic pool. */
function checkFixedAddress(text: string, config: Config): string | undefined {
  const address = parseIpv4(text);
  if (address === undefined)
    return `${JSON.stringify(text)} is not an IPv4 address (expected four numbers 0-255, like 10.0.100.50)`;
  if (text === config.serverAddress) return `${text} is the server's own address`;
  const subnets = [config.dhcp, ...config.dhcp.subnets];
  const home = subnets.find((s) => inSubnet(address, parseIpv4(s.subnet) ?? 0, parseIpv4(s.netmask) ?? 0xffffffff));
  if (config.dhcp.mode === "server" && !home) {
    return `${text} is outside every DHCP subnet (${subnets.map((s) => `${s.subnet}/${s.netmask}`).join(", ")})`;
  }
  for (const s of subnets) {
    const start = parseIpv4(s.range.start);
    const end = parseIpv4(s.range.end);
    if (start !== undefined && end !== undefined && address >= start && address <= end) {
      return `${text} is inside the dynamic pool ${s.range.start}-${s.range.end}; fixed addresses must lie outside it`;
    }
  }
  return undefined;
}
