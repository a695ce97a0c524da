import { type ChildProcess, spawn, type SpawnOptions } from "node:child_process";
import { randomBytes } from "node:crypto";
import { sh } from "./netns.js";

/**
 * One Ethernet segment shared by several servers and clients: a bridge in a namespace of its own,
 * and each member a namespace with one veth port on it. The servers see each other's DHCP traffic
 * as they would on one provisioning VLAN. Everything is named per run and removed by `destroy`.
 */
export interface Segment {
  /** `10.X.Y` — members get `.1`, `.2`, … ; the bridge namespace holds `.254` (for the test's requests). */
  base: string;
  bridgeNs: string;
  /** A namespace with an interface on the segment: `ip` (with /24) or none (a DHCP client). */
  addMember(options?: { ip?: string; mac?: string }): SegmentMember;
  /** Run a command in the bridge namespace (it has `.254`): curl against a server, say. */
  run(cmd: string, args: string[]): string;
  spawn(cmd: string, args: string[], options?: SpawnOptions): ChildProcess;
  destroy(): void;
}

export interface SegmentMember {
  ns: string;
  ifname: string;
  ip?: string;
  mac?: string;
  run(cmd: string, args: string[]): string;
  spawn(cmd: string, args: string[], options?: SpawnOptions): ChildProcess;
}

export function createSegment(): Segment {
  const id = `${process.pid.toString(36).slice(-3)}${randomBytes(2).toString("hex")}`;
  const base = `10.${150 + (process.pid % 50)}.${randomBytes(1)[0]! % 250}`;
  const bridgeNs = `cpg-${id}`;
  const namespaces: string[] = [bridgeNs];
  const children: ChildProcess[] = [];
  const spawnIn = (ns: string, cmd: string, args: string[], options: SpawnOptions = {}) => {
    const child = spawn("ip", ["netns", "exec", ns, cmd, ...args], { stdio: "pipe", ...options });
    children.push(child);
    return child;
  };
  sh("ip", ["netns", "add", bridgeNs]);
  const inBridge = (args: string[]) => sh("ip", ["netns", "exec", bridgeNs, ...args]);
  inBridge(["ip", "link", "add", "br0", "type", "bridge"]);
  inBridge(["ip", "link", "set", "br0", "type", "bridge", "forward_delay", "0"]);
  inBridge(["ip", "addr", "add", `${base}.254/24`, "dev", "br0"]);
  inBridge(["ip", "link", "set", "br0", "up"]);
  inBridge(["ip", "link", "set", "lo", "up"]);
  let members = 0;
  return {
    base,
    bridgeNs,
    addMember(options = {}) {
      const n = members++;
      const ns = `cpm-${id}-${n}`;
      const ifname = `m${n}`;
      const port = `p${id}${n}`.slice(0, 15);
      sh("ip", ["netns", "add", ns]);
      namespaces.push(ns);
      sh("ip", ["link", "add", port, "type", "veth", "peer", "name", `q${id}${n}`.slice(0, 15)]);
      sh("ip", ["link", "set", port, "netns", bridgeNs]);
      sh("ip", ["link", "set", `q${id}${n}`.slice(0, 15), "netns", ns]);
      const inNs = (args: string[]) => sh("ip", ["netns", "exec", ns, ...args]);
      inNs(["ip", "link", "set", `q${id}${n}`.slice(0, 15), "name", ifname]);
      if (options.mac) inNs(["ip", "link", "set", ifname, "address", options.mac]);
      if (options.ip) inNs(["ip", "addr", "add", `${options.ip}/24`, "dev", ifname]);
      inNs(["ip", "link", "set", ifname, "up"]);
      inNs(["ip", "link", "set", "lo", "up"]);
      inBridge(["ip", "link", "set", port, "master", "br0"]);
      inBridge(["ip", "link", "set", port, "up"]);
      return {
        ns,
        ifname,
        ...(options.ip ? { ip: options.ip } : {}),
        ...(options.mac ? { mac: options.mac } : {}),
        run: (cmd, args) => inNs([cmd, ...args]),
        spawn: (cmd, args, opts) => spawnIn(ns, cmd, args, opts),
      };
    },
    run: (cmd, args) => inBridge([cmd, ...args]),
    spawn: (cmd, args, options) => spawnIn(bridgeNs, cmd, args, options),
    destroy() {
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      for (const ns of namespaces.reverse()) {
        try {
          for (const pid of sh("ip", ["netns", "pids", ns]).split(/\s+/).filter(Boolean))
            process.kill(Number(pid), "SIGKILL");
        } catch {
          /* gone already */
        }
        try {
          sh("ip", ["netns", "del", ns]);
        } catch {
          /* gone already */
        }
      }
    },
  };
}
