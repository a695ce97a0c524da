import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { decodePacket, encodePacket, ErrorCode, Opcode, type Packet, type TftpOption } from "../../src/tftp/packet.js";
import { requireBinaries } from "../support/netns.js";
import { makeFixture, makeLink, runInClient, startService } from "./harness.js";

/**
 * What the server refuses, seen from a raw UDP peer in the client namespace: writes, every way of
 * escaping the root, missing files, junk, per-client limits, and no amplification towards an
 * address that never acknowledged.
 */

const rawClient = fileURLToPath(new URL("./raw-client.ts", import.meta.url));

interface RawReply {
  fromPort: number;
  hex: string;
}

const rrq = (filename: string, options: TftpOption[] = [], mode: "octet" | "netascii" | "mail" = "octet") =>
  encodePacket({ opcode: Opcode.ReadRequest, filename, mode, options }).toString("hex");

function decoded(replies: RawReply[] | undefined): Packet[] {
  return (replies ?? []).map((r) => decodePacket(Buffer.from(r.hex, "hex")));
}

function errorCodeOf(replies: RawReply[] | undefined): number | undefined {
  const packets = decoded(replies);
  assert.equal(packets.length, 1, `expected one reply, got ${JSON.stringify(packets)}`);
  const p = packets[0]!;
  assert.equal(p.opcode, Opcode.Error, JSON.stringify(p));
  return p.opcode === Opcode.Error ? p.code : undefined;
}

test("TFTP refusals", { timeout: 300_000 }, async (t) => {
  if (!requireBinaries(t, "ip")) return;
  const fixture = makeFixture();
  const link = makeLink();
  const maxRetriesUnverified = 2;
  // Transfers run in this thread here (workers: 0); the other test files use worker threads, so
  // both ways of running a transfer meet real peers.
  const service = await startService(
    fixture.stateDir,
    link.serverIp,
    {
      initialTimeoutMs: 200,
      maxTimeoutMs: 400,
      unverifiedTimeoutMs: 200,
      maxRetriesUnverified,
      maxTransfersPerClient: 4,
    },
    0,
  );
  const { port } = service.address();
  const raw = async (cases: { name: string; hex: string; waitMs?: number }[]): Promise<Record<string, RawReply[]>> => {
    const input = { server: link.serverIp, port, cases: cases.map((c) => ({ waitMs: 1500, ...c })) };
    const r = await runInClient(link, process.execPath, ["--import", "tsx", rawClient, JSON.stringify(input)]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Record<string, RawReply[]>;
  };
  try {
    await t.test("writes, escapes, missing files and junk", async () => {
      const before = service.stats();
      const replies = await raw([
        {
          name: "write",
          hex: encodePacket({ opcode: Opcode.WriteRequest, filename: "new.bin", mode: "octet", options: [] }).toString(
            "hex",
          ),
        },
        { name: "dotdot", hex: rrq("../secret.txt") },
        { name: "dotdot-inside", hex: rrq("sub/../undionly.kpxe") },
        // A leading `/` is the root (tftpd-hpa --secure): an absolute host path is a name inside
        // it that does not exist, and every escape after the slash is still one.
        { name: "absolute", hex: rrq(fixture.secret) },
        { name: "slash-dotdot", hex: rrq("/../secret.txt") },
        { name: "slash-slash", hex: rrq(`/${fixture.secret}`) },
        { name: "slash-backslash", hex: rrq("/..\\secret.txt") },
        { name: "slash-symlink-out", hex: rrq("/escape-link") },
        { name: "backslash", hex: rrq("..\\secret.txt") },
        { name: "percent", hex: rrq("%2e%2e/secret.txt") },
        { name: "symlink-out", hex: rrq("escape-link") },
        { name: "missing", hex: rrq("missing.bin") },
        { name: "directory", hex: rrq("sub") },
        { name: "mail", hex: rrq("undionly.kpxe", [], "mail") },
        { name: "junk-short", hex: "00" },
        { name: "junk-opcode", hex: "0009616263" },
        { name: "junk-ack", hex: "00040001" },
        { name: "junk-unterminated", hex: Buffer.from("\x00\x01undionly.kpxe", "latin1").toString("hex") },
      ]);
      const escapes = [
        "write",
        "dotdot",
        "dotdot-inside",
        "backslash",
        "percent",
        "symlink-out",
        "slash-dotdot",
        "slash-slash",
        "slash-backslash",
        "slash-symlink-out",
      ];
      for (const name of escapes) {
        assert.equal(errorCodeOf(replies[name]), ErrorCode.AccessViolation, name);
      }
      assert.equal(errorCodeOf(replies.absolute), ErrorCode.FileNotFound);
      assert.equal(errorCodeOf(replies.missing), ErrorCode.FileNotFound);
      assert.equal(errorCodeOf(replies.directory), ErrorCode.FileNotFound);
      assert.equal(errorCodeOf(replies.mail), ErrorCode.IllegalOperation);
      for (const name of ["junk-short", "junk-opcode", "junk-ack", "junk-unterminated"])
        assert.deepEqual(replies[name], [], name);
      const after = service.stats();
      assert.equal(after.junkDropped - before.junkDropped, 4);
      assert.equal(after.requestsRefused - before.requestsRefused, 14);
      assert.equal(after.transfersStarted, before.transfersStarted, "no refused request may start a transfer");
    });

    await t.test(
      "an address that never acknowledges gets nothing larger than an OACK or one 512-byte block",
      async () => {
        const replies = await raw([
          {
            name: "oack",
            hex: rrq("one-mb.bin", [
              { name: "blksize", value: "65464" },
              { name: "windowsize", value: "64" },
              { name: "tsize", value: "0" },
            ]),
            waitMs: 3000,
          },
          { name: "plain", hex: rrq("one-mb.bin"), waitMs: 3000 },
        ]);
        const oacks = decoded(replies.oack);
        assert.ok(oacks.length >= 1 && oacks.length <= 1 + maxRetriesUnverified, JSON.stringify(oacks));
        for (const p of oacks) assert.equal(p.opcode, Opcode.OptionAck);
        for (const r of replies.oack!) assert.ok(r.hex.length / 2 < 64, "an OACK is small");
        const plain = decoded(replies.plain);
        assert.ok(plain.length >= 1 && plain.length <= 1 + maxRetriesUnverified, JSON.stringify(plain));
        for (const p of plain) assert.ok(p.opcode === Opcode.Data && p.block === 1 && p.data.length === 512);
        // Both came from a transfer port, not port 69 (RFC 1350 §4).
        for (const r of [...replies.oack!, ...replies.plain!]) assert.notEqual(r.fromPort, port);
      },
    );

    await t.test(
      "blksize below 512 is not acknowledged: the OACK leaves it out, or DATA 1 of 512 bytes comes at once",
      async () => {
        const replies = await raw([
          {
            name: "with-tsize",
            hex: rrq("undionly.kpxe", [
              { name: "blksize", value: "8" },
              { name: "tsize", value: "0" },
            ]),
            waitMs: 500,
          },
          { name: "alone", hex: rrq("undionly.kpxe", [{ name: "blksize", value: "8" }]), waitMs: 500 },
        ]);
        const oack = decoded(replies["with-tsize"])[0];
        assert.deepEqual(oack, { opcode: Opcode.OptionAck, options: [{ name: "tsize", value: "74213" }] });
        const data = decoded(replies.alone)[0];
        assert.ok(data?.opcode === Opcode.Data && data.block === 1 && data.data.length === 512, JSON.stringify(data));
      },
    );

    await t.test("concurrent transfers per client are limited", async () => {
      const cases = Array.from({ length: 6 }, (_, i) => ({
        name: `t${i}`,
        hex: rrq("undionly.kpxe", [{ name: "tsize", value: "0" }]),
        waitMs: 1000,
      }));
      const replies = await raw(cases);
      const firsts = cases.map((c) => decoded(replies[c.name])[0]);
      assert.equal(firsts.filter((p) => p?.opcode === Opcode.OptionAck).length, 4, JSON.stringify(firsts));
      const refused = firsts.filter((p) => p?.opcode === Opcode.Error);
      assert.equal(refused.length, 2);
      for (const p of refused)
        assert.ok(p.opcode === Opcode.Error && p.code === ErrorCode.NotDefined && /too many/.test(p.message));
    });
  } finally {
    await service.stop();
    link.destroy();
    fixture.cleanup();
  }
});
