import { execFileSync, spawnSync } from "node:child_process";
import { CentraError } from "../errors.js";

/**
 * The lab's isolated network: one network namespace holding a bridge on the seed's 10.0.100.0/24,
 * the server's address on that bridge, and one tap device per virtual machine. Nothing is attached
 * to the host's own interfaces, so the lab's DHCP server can never answer a real machine.
 */

export interface LabNetworkSpec {
  /** Network namespace name; `centra-lab` for the lab, a unique name per e2e test run. */
  namespace: string;
  bridge: string;
  /** The server's address and prefix on the bridge, e.g. 10.0.100.10/24. */
  serverCidr: string;
  taps: string[];
}

export class LabNetworkError extends CentraError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("LAB_NETWORK", message, options);
  }
}

function ip(args: string[]): string {
  try {
    return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? "";
    throw new LabNetworkError(`ip ${args.join(" ")} failed: ${stderr.trim() || (error as Error).message}`, {
      cause: error,
    });
  }
}

export function namespaceExists(namespace: string): boolean {
  const result = spawnSync("ip", ["netns", "list"], { encoding: "utf8" });
  return (result.stdout ?? "").split("\n").some((line) => line.split(" ")[0] === namespace);
}

/** Create the namespace, bridge and taps. Fails if the namespace exists: `lab down` first. */
export function createLabNetwork(spec: LabNetworkSpec): void {
  if (namespaceExists(spec.namespace))
    throw new LabNetworkError(`network namespace ${spec.namespace} already exists (run \`centra-pxe lab down\` first)`);
  ip(["netns", "add", spec.namespace]);
  try {
    const inNs = (args: string[]) => ip(["-n", spec.namespace, ...args]);
    inNs(["link", "set", "lo", "up"]);
    // STP off and no forwarding delay: a PXE ROM gives up on DHCP long before a 15 s learning phase ends.
    inNs(["link", "add", spec.bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"]);
    inNs(["addr", "add", spec.serverCidr, "dev", spec.bridge]);
    inNs(["link", "set", spec.bridge, "up"]);
    for (const tap of spec.taps) {
      inNs(["tuntap", "add", "dev", tap, "mode", "tap"]);
      inNs(["link", "set", tap, "master", spec.bridge]);
      inNs(["link", "set", tap, "up"]);
    }
  } catch (error) {
    destroyLabNetwork(spec.namespace);
    throw error;
  }
}

/** PIDs of every process still running inside the namespace. */
export function namespacePids(namespace: string): number[] {
  const result = spawnSync("ip", ["netns", "pids", namespace], { encoding: "utf8" });
  return (result.stdout ?? "")
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 1);
}

/**
 * Kill whatever still runs in the namespace and delete it; the taps and the bridge live inside it and
 * go with it. Safe to call when nothing exists.
 */
export function destroyLabNetwork(namespace: string): void {
  if (!namespaceExists(namespace)) return;
  for (const pid of namespacePids(namespace)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* exited meanwhile */
    }
  }
  spawnSync("ip", ["netns", "del", namespace], { stdio: "ignore" });
}

/**
 * A second namespace for the proxyDHCP lab's foreign DHCP server, wired to the lab bridge by a veth
 * pair: a separate host on the same segment, as a site's existing DHCP server would be. (In the lab
 * namespace itself it would fight ours for UDP port 67.)
 */
export function createForeignDhcpNamespace(spec: {
  labNamespace: string;
  bridge: string;
  namespace: string;
  cidr: string;
  interface: string;
}): void {
  if (namespaceExists(spec.namespace))
    throw new LabNetworkError(`network namespace ${spec.namespace} already exists (run \`centra-pxe lab down\` first)`);
  ip(["netns", "add", spec.namespace]);
  try {
    const bridgeSide = `${spec.interface}-br`.slice(0, 15);
    ip([
      "-n",
      spec.labNamespace,
      "link",
      "add",
      bridgeSide,
      "type",
      "veth",
      "peer",
      "name",
      spec.interface,
      "netns",
      spec.namespace,
    ]);
    ip(["-n", spec.labNamespace, "link", "set", bridgeSide, "master", spec.bridge]);
    ip(["-n", spec.labNamespace, "link", "set", bridgeSide, "up"]);
    ip(["-n", spec.namespace, "link", "set", "lo", "up"]);
    ip(["-n", spec.namespace, "addr", "add", spec.cidr, "dev", spec.interface]);
    ip(["-n", spec.namespace, "link", "set", spec.interface, "up"]);
  } catch (error) {
    destroyLabNetwork(spec.namespace);
    throw error;
  }
}
