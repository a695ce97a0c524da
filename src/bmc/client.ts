import { CentraError } from "../errors.js";

/**
 * What the server asks of a machine's BMC, whatever protocol it speaks (IPMI over LAN through
 * `ipmitool`, Redfish over HTTPS). Every method resolves or throws a `BmcError` within the
 * client's bounded time (`BmcTimeouts`): a dead BMC must never hold up the caller, nor other nodes.
 */
export interface BmcClient {
  readonly protocol: BmcProtocol;
  /** Chassis power as the BMC reports it now. */
  powerStatus(): Promise<PowerState>;
  /**
   * `on`/`off` are hard (not an ACPI shutdown: a machine being reinstalled has nothing to save);
   * `cycle` is off then on (from off: on); `reset` is a warm reset (refused by most BMCs when off).
   */
  power(action: PowerAction): Promise<void>;
  /**
   * Set the next boot's device, then read it back: `readBack` is what the BMC kept and `mismatch`
   * names what it did not keep (e.g. an IPMI BMC that ignores `efiboot`), as data, for the caller's
   * event; the set itself failing throws.
   */
  setBootDevice(device: BootDevice, options?: BootOptions): Promise<BootDeviceResult>;
  /** The boot override the BMC holds now. */
  getBootDevice(): Promise<BootOverride>;
  /** What the BMC knows of its machine; fields the protocol does not offer are left out, `macs` empty. */
  identity(): Promise<BmcIdentity>;
}

export type BmcProtocol = "ipmi" | "redfish";

export const POWER_ACTIONS = ["on", "off", "cycle", "reset"] as const;
export type PowerAction = (typeof POWER_ACTIONS)[number];

export type PowerState = "on" | "off";

/**
 * `pxe` network boot, `disk` the first local disk, `http` UEFI HTTP boot (Redfish `UefiHttp`;
 * IPMI has no such device and refuses it as unsupported).
 */
export const BOOT_DEVICES = ["pxe", "disk", "http"] as const;
export type BootDevice = (typeof BOOT_DEVICES)[number];

export interface BootOptions {
  /** Every boot (IPMI "persistent", Redfish `Continuous`), not only the next one (default false). */
  persistent?: boolean;
  /**
   * Boot in UEFI mode (IPMI `efiboot`, Redfish `BootSourceOverrideMode: UEFI`) or legacy BIOS
   * (false). Undefined: the firmware's mode is not known; Redfish then leaves the mode as it is, IPMI
   * sends legacy (its flags have no "unchanged"), and the read-back does not compare the mode.
   */
  efi?: boolean;
}

/** A boot override as the BMC reports it. */
export interface BootOverride {
  /** `none`: no override (the machine's own boot order); `other`: a device we do not set (CD, BIOS setup…). */
  device: BootDevice | "none" | "other";
  /** Applies to every boot; false for a one-time override (or none). */
  persistent: boolean;
  /** UEFI mode; undefined when the BMC does not say. */
  efi?: boolean;
  /** The protocol's own words (IPMI boot flags in hex, Redfish's target), for an operator reading an event. */
  raw: string;
}

export interface BootDeviceResult {
  requested: { device: BootDevice; persistent: boolean; efi?: boolean };
  readBack: BootOverride;
  /** Set when the read-back differs from the request; says what differs. */
  mismatch?: string;
}

export interface BmcIdentity {
  /** SMBIOS system UUID, lower case 8-4-4-4-12. */
  uuid?: string;
  serial?: string;
  manufacturer?: string;
  model?: string;
  /** The machine's NIC MACs (normalised), those with a real address only; IPMI offers none. */
  macs: string[];
}

/** Where a BMC is and how to log in: what a client is built from (the password resolved by the caller). */
export interface BmcEndpoint {
  protocol: BmcProtocol;
  /** Host name or IP address. */
  address: string;
  /** Default: 623 (IPMI, RMCP+) or 443 (Redfish). */
  port?: number;
  username: string;
  password: string;
  /**
   * Redfish over HTTPS: the sha256 fingerprint of the BMC's certificate (hex, `:` allowed). With it the
   * certificate is accepted when, and only when, it matches (BMCs ship self-signed certificates);
   * without it the certificate must chain to a trusted CA.
   */
  fingerprint?: string;
  /** Redfish: `https` (default) or `http` (labs and mockups only). */
  scheme?: "https" | "http";
  /** IPMI: the RMCP+ cipher suite (`ipmitool -C`); default ipmitool's choice. */
  cipherSuite?: number;
}

export interface BmcTimeouts {
  /** One attempt (one ipmitool run, one HTTP request). */
  attemptMs: number;
  /**
   * Attempts of a request that found nothing there (`unreachable`); never of a refused password, and
   * never of a request that may have been carried out (an unanswered command, a Redfish POST or PATCH).
   */
  attempts: number;
}

export const DEFAULT_BMC_TIMEOUTS: BmcTimeouts = { attemptMs: 10_000, attempts: 2 };

/**
 * Why a BMC operation failed, in the words an operator acts on:
 * - `unreachable`: nothing answered (no route, refused, RMCP+ session never opened);
 * - `credentials`: the BMC answered and refused the username or password;
 * - `unsupported`: the BMC does not offer this (a reset type, a boot device, a resource);
 * - `timeout`: it answered part of the way, then hung past the bounded time;
 * - `certificate`: HTTPS, and the certificate is not the pinned one (or not trusted);
 * - `failed`: the BMC refused or garbled the command otherwise.
 */
export const BMC_FAILURES = ["unreachable", "credentials", "unsupported", "timeout", "certificate", "failed"] as const;
export type BmcFailure = (typeof BMC_FAILURES)[number];

/** A BMC operation that failed; `code` is `BMC_<FAILURE>` (e.g. `BMC_CREDENTIALS`). */
export class BmcError extends CentraError {
  constructor(
    readonly failure: BmcFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`BMC_${failure.toUpperCase()}`, message, options);
  }
}

export function isBmcError(error: unknown): error is BmcError {
  return error instanceof BmcError;
}

export function defaultBmcPort(protocol: BmcProtocol): number {
  return protocol === "ipmi" ? 623 : 443;
}
