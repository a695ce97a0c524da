import { createHash, randomBytes } from "node:crypto";
import dgram from "node:dgram";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../config/schema.js";
import { serverHttpUrl } from "../config/server-url.js";
import { parseIpv4 } from "../config/primitives.js";
import { openDeviceSocketFd } from "../dhcp/device-socket.js";
import { MessageType, Option } from "../dhcp/options.js";
import { BootOp, clientRequest, decode, encode, messageType, optionAddress } from "../dhcp/packet.js";
import { installedBootloaders } from "../files/bootloaders.js";
import { bootloaderDir } from "../files/state-dir.js";
import { decodePacket, encodePacket, Opcode, type Packet } from "../tftp/packet.js";

/**
 * `centra-pxe doctor`: the seed's `setup.sh --test`. Checks a running server end to end from the
 * server's own host, the way a booting machine would meet it, and says how to fix what fails.
 */

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
  /** What to do about it, when it failed. */
  fix?: string;
}

const TIMEOUT_MS = 4000;

export interface DoctorOptions {
  /** The HTTP checks' server (--url); default: where the config's HTTP part listens. */
  httpBase?: string;
}

export async function runDoctor(config: Config, options: DoctorOptions = {}): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const httpBase = options.httpBase ?? serverHttpUrl(config);
  results.push(await checkHttpHealth(httpBase));
  results.push(await checkBootScript(httpBase));
  if (config.tftp.enabled) {
    const loaders = await installedBootloaders(bootloaderDir(config.stateDir));
    if (loaders.length === 0) {
      results.push({
        name: "bootloaders",
        ok: false,
        detail: `none in ${bootloaderDir(config.stateDir)}`,
        fix: "run `centra-pxe init` (Debian: apt-get install ipxe first)",
      });
    }
    // In parallel: a server that does not answer costs one timeout, not one per bootloader.
    results.push(...(await Promise.all(loaders.map((name) => checkTftpRead(config, name)))));
  }
  if (config.dhcp.mode === "server") results.push(await checkDhcpOffer(config));
  return results;
}

async function checkHttpHealth(base: string): Promise<CheckResult> {
  const name = "http /health";
  try {
    const response = await fetch(`${base}/health`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    const body = await response.text();
    if (response.ok) return { name, ok: true, detail: `200 ${body.slice(0, 200)}` };
    // Several servers on one database: this one lacks the files of an image version another added.
    const images = /"images":\{"ok":false,"detail":"([^"]*)"/.exec(body)?.[1];
    if (images)
      return {
        name,
        ok: false,
        detail: `${response.status} ${images}`,
        fix: "run `centra-pxe images add` on this host too, or list a server that has the files in storage.peers (they are copied and checked by sha256)",
      };
    return {
      name,
      ok: false,
      detail: `${response.status} ${body.slice(0, 300)}`,
      fix: "a part of the server is not serving: read its JSON log for the part named above",
    };
  } catch (error) {
    return {
      name,
      ok: false,
      detail: `${base}/health: ${describe(error)}`,
      fix: "is `centra-pxe serve` running, and is serverAddress an address of this host? (ip addr; check http.port and firewalls for TCP)",
    };
  }
}

async function checkBootScript(base: string): Promise<CheckResult> {
  const name = "http boot script";
  try {
    const response = await fetch(`${base}/boot/ipxe/boot.ipxe`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    const body = await response.text();
    if (response.ok && body.startsWith("#!ipxe"))
      return { name, ok: true, detail: `/boot/ipxe/boot.ipxe is an iPXE script (${body.length} bytes)` };
    return {
      name,
      ok: false,
      detail: `/boot/ipxe/boot.ipxe answered ${response.status}: ${body.slice(0, 120)}`,
      fix: "the HTTP part answers but not with the entry script: check the server log",
    };
  } catch (error) {
    return { name, ok: false, detail: describe(error), fix: "is `centra-pxe serve` running?" };
  }
}

/** Read a whole file over TFTP the way firmware does (octet, blksize 1468) and compare it with the disk. */
async function checkTftpRead(config: Config, file: string): Promise<CheckResult> {
  const name = `tftp ${file}`;
  const expected = await readFile(join(bootloaderDir(config.stateDir), file));
  const socket = dgram.createSocket("udp4");
  try {
    const received = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let blockSize = 512;
      const timer = setTimeout(
        () => reject(new Error(`no answer from ${config.serverAddress}:${config.tftp.port} within ${TIMEOUT_MS} ms`)),
        TIMEOUT_MS * 3,
      );
      socket.on("error", reject);
      socket.on("message", (message, peer) => {
        let packet: Packet;
        try {
          packet = decodePacket(message);
        } catch (error) {
          reject(error as Error);
          return;
        }
        const ack = (block: number) =>
          socket.send(encodePacket({ opcode: Opcode.Ack, block }), peer.port, peer.address);
        if (packet.opcode === Opcode.Error) reject(new Error(`TFTP error ${packet.code}: ${packet.message}`));
        else if (packet.opcode === Opcode.OptionAck) {
          blockSize = Number(packet.options.find((o) => o.name.toLowerCase() === "blksize")?.value ?? 512);
          ack(0);
        } else if (packet.opcode === Opcode.Data) {
          if (packet.block === (chunks.length + 1) % 65536) chunks.push(Buffer.from(packet.data));
          ack(packet.block);
          if (packet.data.length < blockSize) {
            clearTimeout(timer);
            resolve(Buffer.concat(chunks));
          }
        }
      });
      socket.send(
        encodePacket({
          opcode: Opcode.ReadRequest,
          filename: file,
          mode: "octet",
          options: [
            { name: "blksize", value: "1468" },
            { name: "tsize", value: "0" },
          ],
        }),
        config.tftp.port,
        config.serverAddress,
      );
    });
    const same =
      createHash("sha256").update(received).digest("hex") === createHash("sha256").update(expected).digest("hex");
    return same
      ? { name, ok: true, detail: `${received.length} bytes, identical to the file on disk` }
      : {
          name,
          ok: false,
          detail: `got ${received.length} bytes that differ from the ${expected.length} on disk`,
          fix: "report this: the TFTP part served wrong bytes",
        };
  } catch (error) {
    return {
      name,
      ok: false,
      detail: describe(error),
      fix: "is the TFTP part enabled and UDP 69 open (firewall)? The log names refused reads",
    };
  } finally {
    socket.close();
  }
}

/**
 * Broadcast a DHCPDISCOVER on the configured interface, as a machine on that network would, and
 * wait for the OFFER. The probe uses a locally administered MAC and no PXE options, so it takes no
 * lease (an offer is only held briefly) and adds nothing to the inventory.
 */
async function checkDhcpOffer(config: Config): Promise<CheckResult> {
  const name = `dhcp on ${config.interface}`;
  const mac = randomBytes(6);
  mac[0] = (mac[0]! & 0xfe) | 0x02;
  const xid = randomBytes(4).readUInt32BE(0);
  let socket: dgram.Socket;
  try {
    socket = await adopt(openDeviceSocketFd(config.interface, 68));
  } catch (error) {
    return {
      name,
      ok: false,
      detail: `cannot open a DHCP client socket on ${config.interface}: ${describe(error)}`,
      fix: "run doctor as root on the server's host; is another DHCP client holding port 68 on this interface?",
    };
  }
  try {
    socket.setBroadcast(true);
    const offer = await new Promise<ReturnType<typeof decode>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no DHCPOFFER within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
      socket.on("message", (message) => {
        try {
          const packet = decode(message);
          if (packet.op === BootOp.Reply && packet.xid === xid && messageType(packet) === MessageType.Offer) {
            clearTimeout(timer);
            resolve(packet);
          }
        } catch {
          /* not ours */
        }
      });
      const discover = encode(
        clientRequest(
          mac,
          xid,
          new Map([
            [Option.MessageType, Buffer.from([MessageType.Discover])],
            [Option.ParameterRequestList, Buffer.from([Option.SubnetMask, Option.Router, Option.DomainNameServer])],
          ]),
        ),
      );
      socket.send(discover, 67, "255.255.255.255");
    });
    const serverId = optionAddress(offer, Option.ServerIdentifier);
    const expected = parseIpv4(config.serverAddress);
    const offered = [
      offer.yiaddr >>> 24,
      (offer.yiaddr >>> 16) & 255,
      (offer.yiaddr >>> 8) & 255,
      offer.yiaddr & 255,
    ].join(".");
    if (serverId !== expected) {
      return {
        name,
        ok: false,
        detail: `an OFFER of ${offered} came from another DHCP server (identifier ${serverId === undefined ? "none" : serverId.toString(16)})`,
        fix: "a second DHCP server answers on this network: machines may boot from it",
      };
    }
    return { name, ok: true, detail: `OFFER of ${offered} from ${config.serverAddress}` };
  } catch (error) {
    return {
      name,
      ok: false,
      detail: describe(error),
      fix: `is \`centra-pxe serve\` running with dhcp.mode server on ${config.interface}? Is the pool exhausted (\`centra-pxe leases\`)?`,
    };
  } finally {
    socket.close();
  }
}

/** Wrap a bound descriptor from the native addon in a dgram socket (Node adopts it given `fd`). */
async function adopt(fd: number): Promise<dgram.Socket> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind({ fd }, () => {
      socket.off("error", reject);
      resolve();
    });
  });
  return socket;
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return cause?.code ? `${error.message} (${cause.code})` : error.message;
  }
  return String(error);
}
