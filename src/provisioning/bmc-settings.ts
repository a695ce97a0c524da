import { readFile } from "node:fs/promises";
import { BmcError, type BmcEndpoint, newSealKey, openPassword, sealPassword } from "../bmc/index.js";
import type { NodeBmc, Store } from "../store/store.js";
import type { FieldProblem } from "./errors.js";

/**
 * A node's BMC between the API and the store: what an admin sends (`password` in the clear, once,
 * over the authenticated API), what is kept (`NodeBmc`: a file path or the password sealed with the
 * server's key) and what is shown (`PublicBmc`: never the password nor where it is).
 */

/** The store's secret the BMC passwords are sealed with. */
const SEAL_KEY = "bmc-password-key";

/**
 * A BMC as the API takes it (a config node's comes with `passwordFile` instead); `password` exists only
 * between the request and the seal.
 */
export interface BmcInput extends Omit<NodeBmc, "sealedPassword"> {
  password?: string;
}

/** A BMC as every read shows it: how the password is held, never the password. */
export interface PublicBmc extends Omit<NodeBmc, "sealedPassword" | "passwordFile"> {
  password: "file" | "stored";
}

export function publicBmc(bmc: NodeBmc): PublicBmc {
  const { sealedPassword: _sealed, passwordFile, ...rest } = bmc;
  return { ...rest, password: passwordFile !== undefined ? "file" : "stored" };
}

const BMC_FIELDS = [
  "type",
  "address",
  "port",
  "username",
  "password",
  "passwordFile",
  "fingerprint",
  "scheme",
  "cipherSuite",
] as const;
const HOST = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;
const FINGERPRINT = /^([0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$/;

/**
 * The `bmc` field of a node body; problems are named `bmc.<field>`. Without `password` and
 * a `passwordFile` (config nodes only) the node's current password is kept (an update that moves the BMC to a new address).
 */
export function parseBmcInput(raw: unknown, problem: (field: string, message: string) => void): BmcInput | undefined {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    problem(
      "bmc",
      'must be an object like {"type": "redfish", "address": "10.0.200.5", "username": "root", "password": "…"}',
    );
    return undefined;
  }
  const input = raw as Record<string, unknown>;
  let ok = true;
  const bad = (field: string, message: string) => {
    ok = false;
    problem(`bmc.${field}`, message);
  };
  for (const key of Object.keys(input))
    if (!(BMC_FIELDS as readonly string[]).includes(key)) bad(key, `unknown field (known: ${BMC_FIELDS.join(", ")})`);
  const type = input.type;
  if (type !== "ipmi" && type !== "redfish") bad("type", "must be ipmi or redfish");
  const text = (field: string, max: number, rule?: RegExp, why?: string): string | undefined => {
    const value = input[field];
    if (value === undefined) return undefined;
    if (typeof value !== "string" || value.length === 0 || value.length > max) {
      bad(field, `must be a string of 1 to ${max} characters`);
      return undefined;
    }
    if (rule && !rule.test(value)) {
      bad(field, why ?? "is not valid");
      return undefined;
    }
    return value;
  };
  const address = text("address", 253, HOST, "must be a host name or an IP address");
  if (input.address === undefined) bad("address", "is required");
  const username = text("username", 64);
  if (input.username === undefined) bad("username", "is required");
  // IPMI 2.0 passwords are at most 20 bytes; Redfish ones longer. ipmitool reads a line, so no newline.
  const password = text("password", 256, /^[^\n\r\0]+$/, "must be one line");
  // A file on the server is the config file's to name, never the API's: a token holder could point
  // it at any file the server reads (its first line sent as a password to a BMC address of their choosing).
  if (input.passwordFile !== undefined)
    bad(
      "passwordFile",
      "is for the config file only (nodes.<mac>.bmc.passwordFile); send the password, which the server keeps sealed",
    );
  const fingerprint = text("fingerprint", 95, FINGERPRINT, "is not a sha256 fingerprint (64 hex digits, ':' allowed)");
  const scheme = input.scheme;
  if (scheme !== undefined && scheme !== "http" && scheme !== "https") bad("scheme", "must be https or http");
  const port = input.port;
  if (port !== undefined && (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535))
    bad("port", "must be a port number 1-65535");
  const cipherSuite = input.cipherSuite;
  if (
    cipherSuite !== undefined &&
    (typeof cipherSuite !== "number" || !Number.isInteger(cipherSuite) || cipherSuite < 0 || cipherSuite > 17)
  )
    bad("cipherSuite", "must be an RMCP+ cipher suite number 0-17");
  if (!ok || address === undefined || username === undefined) return undefined;
  const bmc: BmcInput = { type: type as NodeBmc["type"], address, username };
  if (port !== undefined) bmc.port = port as number;
  if (password !== undefined) bmc.password = password;
  if (fingerprint !== undefined) bmc.fingerprint = fingerprint.toLowerCase();
  if (scheme !== undefined) bmc.scheme = scheme as "http" | "https";
  if (cipherSuite !== undefined) bmc.cipherSuite = cipherSuite as number;
  return bmc;
}

/** The problems of a BMC input that only the node's current state can tell (no password anywhere). */
export function missingPassword(input: BmcInput, previous: NodeBmc | undefined): FieldProblem | undefined {
  if (input.password !== undefined || input.passwordFile !== undefined) return undefined;
  if (previous?.sealedPassword !== undefined || previous?.passwordFile !== undefined) return undefined;
  return { field: "bmc.password", message: "is required: the server keeps it sealed" };
}

/** What the store keeps of an input: the password sealed for this node, or the file path, or the previous one. */
export async function storedBmc(store: Store, nodeId: string, input: BmcInput, previous?: NodeBmc): Promise<NodeBmc> {
  const { password, ...rest } = input;
  const bmc: NodeBmc = { ...rest };
  if (password !== undefined) {
    const key = await store.secrets.getOrCreate(SEAL_KEY, newSealKey);
    bmc.sealedPassword = sealPassword(key, nodeId, password);
    delete bmc.passwordFile;
  } else if (input.passwordFile === undefined && previous !== undefined) {
    if (previous.sealedPassword !== undefined) bmc.sealedPassword = previous.sealedPassword;
    if (previous.passwordFile !== undefined) bmc.passwordFile = previous.passwordFile;
  }
  return bmc;
}

/** Where to reach a node's BMC, the password read from its file or unsealed, for one operation. */
export async function bmcEndpoint(store: Store, nodeId: string, bmc: NodeBmc): Promise<BmcEndpoint> {
  let password: string;
  if (bmc.passwordFile !== undefined) {
    // One line, as ipmitool reads a password file; the trailing newline editors add is not part of it.
    const file = bmc.passwordFile;
    const text = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
      throw new BmcError("credentials", `cannot read the BMC password file ${file} (${error.code ?? error.message})`);
    });
    password = text.split(/\r?\n/)[0] ?? "";
  } else if (bmc.sealedPassword !== undefined) {
    password = openPassword(await store.secrets.getOrCreate(SEAL_KEY, newSealKey), nodeId, bmc.sealedPassword);
  } else {
    password = "";
  }
  const endpoint: BmcEndpoint = { protocol: bmc.type, address: bmc.address, username: bmc.username, password };
  if (bmc.port !== undefined) endpoint.port = bmc.port;
  if (bmc.fingerprint !== undefined) endpoint.fingerprint = bmc.fingerprint;
  if (bmc.scheme !== undefined) endpoint.scheme = bmc.scheme;
  if (bmc.cipherSuite !== undefined) endpoint.cipherSuite = bmc.cipherSuite;
  return endpoint;
}
