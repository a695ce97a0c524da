import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { FIRMWARE_TABLE, httpBootBase } from "../boot/firmware.js";
import { formatIpv4, parseIpv4 } from "../config/primitives.js";
import type { Destination } from "./destination.js";
import { handle, type DhcpContext, type HandleResult } from "./handler.js";
import { messageTypeName } from "./options.js";
import { decode, encode, messageType } from "./packet.js";
import { AddressPool } from "./pool.js";
import { readPcap } from "../files/pcap.js";

/**
 * Golden replies, as netboot's dhcp4 tests keep them: every client packet of the four captures of
 * real firmware (testdata/dhcp/README.md) goes through `handle` and the encoded reply is compared
 * byte for byte with testdata/dhcp/golden/<capture>.txt. Any change to what a real client receives
 * shows up as a diff there. Regenerate after an intended change with
 * `UPDATE_GOLDEN=1 node --import tsx --test src/dhcp/golden.test.ts`, then read the diff.
 */

const GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), "../../testdata/dhcp/golden");
const CAPTURES_DIR = join(dirname(fileURLToPath(import.meta.url)), "../../testdata/dhcp");

/** The server the captures were taken against (their OFFERs say so): 10.77.0.1 on 10.77.0.0/16. */
const SERVER = "10.77.0.1";
/** A fixed clock: nothing in a reply is absolute time, but offers and leases are held relative to it. */
const NOW = Date.UTC(2026, 10, 25, 20, 0, 0);

/**
 * The one place the handler's context is built, so a change of its shape is one edit here.
 * Each capture starts from an empty pool whose first free address is the one the captured server
 * gave that client, so the client's REQUEST (which names that address) is the one it really sent.
 */
function goldenContext(poolStart: string): DhcpContext {
  const ip = (s: string) => parseIpv4(s)!;
  const installed = new Set(["undionly.kpxe", "ipxe.efi", "snponly.efi"]);
  return {
    mode: "server",
    serverAddress: ip(SERVER),
    subnets: [
      {
        network: ip("10.77.0.0"),
        mask: ip("255.255.0.0"),
        broadcast: ip("10.77.255.255"),
        router: ip(SERVER),
        dns: [ip(SERVER)],
        leaseSeconds: 3600,
        pool: new AddressPool(ip(poolStart), ip("10.77.4.254")),
        label: "10.77.0.0/16",
      },
    ],
    lookupNode: () => undefined,
    relays: new Set(),
    boot: { firmware: FIRMWARE_TABLE, installed: () => installed, httpBase: httpBootBase(SERVER, 80) },
    now: NOW,
  };
}

const CAPTURES = [
  { name: "dhclient-dora-release", poolStart: "10.77.4.232" },
  { name: "udhcpc-pxe-dora", poolStart: "10.77.4.232" },
  { name: "ipxe-bios-qemu", poolStart: "10.77.4.233" },
  { name: "ovmf-uefi-pxe", poolStart: "10.77.4.234" },
] as const;

function describeDestination(d: Destination): string {
  if (d.kind === "broadcast") return `broadcast:${d.port}`;
  if (d.kind === "unicast") return `${formatIpv4(d.address)}:${d.port}`;
  return `${formatIpv4(d.address)}:${d.port} at ${d.mac.toString("hex").replace(/(..)(?!$)/g, "$1:")}`;
}

function hexLines(bytes: Buffer): string[] {
  const lines: string[] = [];
  for (let offset = 0; offset < bytes.length; offset += 32)
    lines.push(bytes.subarray(offset, offset + 32).toString("hex"));
  return lines;
}

/**
 * The golden text of one capture: per client packet, what it was and either "no reply" or the
 * reply's type, destination and bytes (hex, 32 a line). The reason for silence is prose that may
 * be reworded, so only the fact of silence is pinned.
 */
function replay(capture: string, context: DhcpContext): { text: string; replies: number } {
  const requests = readPcap(join(CAPTURES_DIR, `${capture}.pcap`)).filter((d) => d.destinationPort === 67);
  const lines = [`# ${capture}.pcap: ${requests.length} client packets through handle() (src/dhcp/golden.test.ts)`];
  let replies = 0;
  requests.forEach((datagram, index) => {
    const request = decode(datagram.payload);
    const result: HandleResult = handle(request, context, { address: 0, port: datagram.sourcePort, pxePort: false });
    const asked = messageTypeName(messageType(request)!);
    if (result.kind === "ignore") {
      lines.push(`${index + 1} ${asked}: no reply`);
      return;
    }
    replies++;
    const bytes = encode(result.reply, result.maxSize);
    lines.push(
      `${index + 1} ${asked}: ${messageTypeName(messageType(result.reply)!)} to ${describeDestination(result.destination)}, ${bytes.length} bytes`,
    );
    lines.push(...hexLines(bytes));
  });
  return { text: `${lines.join("\n")}\n`, replies };
}

function golden(name: string, actual: string): void {
  const file = join(GOLDEN_DIR, name);
  if (process.env.UPDATE_GOLDEN === "1") {
    mkdirSync(GOLDEN_DIR, { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  let expected: string;
  try {
    expected = readFileSync(file, "utf8");
  } catch {
    assert.fail(`golden file ${file} is missing; create it with UPDATE_GOLDEN=1`);
  }
  assert.equal(actual, expected, `${name} differs from its golden file (UPDATE_GOLDEN=1 regenerates it)`);
}

describe("golden replies to real firmware, byte for byte", () => {
  for (const { name, poolStart } of CAPTURES) {
    it(name, () => {
      const { text, replies } = replay(name, goldenContext(poolStart));
      // A DORA exchange: at least the OFFER and the ACK, so an all-silent handler cannot pass.
      assert.ok(replies >= 2, text);
      golden(`${name}.txt`, text);
    });
  }

  it("are the very bytes the captured server sent, which the firmware accepted and booted from", () => {
    for (const { name, poolStart } of CAPTURES) {
      const context = goldenContext(poolStart);
      const captured = readPcap(join(CAPTURES_DIR, `${name}.pcap`));
      const accepted = captured.filter((d) => d.sourcePort === 67).map((d) => d.payload.toString("hex"));
      const ours = captured
        .filter((d) => d.destinationPort === 67)
        .map((d) => handle(decode(d.payload), context))
        .flatMap((r) => (r.kind === "reply" ? [encode(r.reply, r.maxSize).toString("hex")] : []));
      assert.deepEqual(ours, accepted, `${name}: our replies differ from the ones in the capture`);
    }
  });
});
