/**
 * BMC power and boot control (issue 13): one `BmcClient` contract, two protocols. The provisioning
 * layer drives it (power, boot device, discovery); nothing here knows the inventory.
 */
import type { BmcClient, BmcEndpoint, BmcTimeouts } from "./client.js";
import { IpmitoolClient, type IpmiOptions } from "./ipmi.js";
import { RedfishClient } from "./redfish.js";

export * from "./boot-override.js";
export * from "./client.js";
export { IpmitoolClient, type IpmiOptions } from "./ipmi.js";
export { RedfishClient } from "./redfish.js";

export interface BmcClientOptions extends Partial<BmcTimeouts> {
  /** IPMI only: the ipmitool binary and cipher suite. */
  ipmi?: Pick<IpmiOptions, "ipmitool" | "cipherSuite">;
}

/** The client for an endpoint's protocol. */
export function createBmcClient(endpoint: BmcEndpoint, options: BmcClientOptions = {}): BmcClient {
  const timeouts: Partial<BmcTimeouts> = {};
  if (options.attemptMs !== undefined) timeouts.attemptMs = options.attemptMs;
  if (options.attempts !== undefined) timeouts.attempts = options.attempts;
  return endpoint.protocol === "ipmi"
    ? new IpmitoolClient(endpoint, { ...timeouts, ...options.ipmi })
    : new RedfishClient(endpoint, timeouts);
}
export * from "./secret.js";
