import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireBinaries } from "../support/netns.js";
import { makeFixture, makeLink, readSha, runInClient, sha256, startService } from "./harness.js";

/**
 * Real TFTP clients (curl, tftp-hpa, atftp) in a client network namespace fetch from the server
 * running in this process on the root-namespace end of a veth pair.
 */
test("TFTP server with real clients", { timeout: 600_000 }, async (t) => {
  if (!requireBinaries(t, "ip", "curl", "tftp", "atftp")) return;
  const fixture = makeFixture();
  const out = mkdtempSync(join(tmpdir(), "cpxe-tftp-out-"));
  const link = makeLink();
  const service = await startService(fixture.stateDir, link.serverIp);
  const { port } = service.address();
  const url = (name: string) => `tftp://${link.serverIp}:${port}/${name}`;
  let n = 0;
  const outFile = () => join(out, `f${n++}`);
  try {
    await t.test("curl: default options, blksize 1468, no options, empty and block-multiple files", async () => {
      const cases: [string, string[]][] = [
        ["undionly.kpxe", []],
        ["undionly.kpxe", ["--tftp-blksize", "1468"]],
        ["undionly.kpxe", ["--tftp-no-options"]],
        ["one-mb.bin", ["--tftp-blksize", "1468"]],
        ["exact.bin", ["--tftp-blksize", "1468"]],
        // curl 7.88 fails on an empty file when the OACK says tsize 0 (error 71, "getpeername() failed"),
        // against tftpd-hpa too; without options it takes the one empty DATA block as it should.
        ["empty.bin", ["--tftp-no-options"]],
        ["sub/ipxe.efi", []],
        ["inside-link", []],
      ];
      for (const [name, flags] of cases) {
        const file = outFile();
        const r = await runInClient(link, "curl", ["-sS", "--max-time", "120", ...flags, "-o", file, url(name)]);
        assert.equal(r.code, 0, `curl ${flags.join(" ")} ${name}: ${r.stderr}`);
        const expected = name === "inside-link" ? fixture.files["undionly.kpxe"]! : fixture.files[name]!;
        assert.equal(readSha(file), sha256(expected), `curl ${flags.join(" ")} ${name}`);
      }
    });

    await t.test("tftp-hpa: octet and netascii", async () => {
      const binary = outFile();
      let r = await runInClient(link, "tftp", [
        "-m",
        "binary",
        link.serverIp,
        String(port),
        "-c",
        "get",
        "one-mb.bin",
        binary,
      ]);
      assert.doesNotMatch(r.stdout + r.stderr, /error|timed out/i);
      assert.equal(readSha(binary), sha256(fixture.files["one-mb.bin"]!));
      // tftp-hpa converts netascii back to local line ends, so the file arrives as stored.
      const text = outFile();
      r = await runInClient(link, "tftp", [
        "-m",
        "ascii",
        link.serverIp,
        String(port),
        "-c",
        "get",
        "readme.txt",
        text,
      ]);
      assert.doesNotMatch(r.stdout + r.stderr, /error|timed out/i);
      assert.equal(readSha(text), sha256(fixture.files["readme.txt"]!));
    });

    await t.test("atftp: blksize, tsize and windowsize", async () => {
      for (const options of [
        ["blksize 1468", "tsize 0"],
        ["blksize 1468", "windowsize 16", "tsize 0"],
        ["blksize 8192", "windowsize 4"],
        ["blksize 512", "windowsize 64"],
      ]) {
        const file = outFile();
        const args = options.flatMap((o) => ["--option", o]);
        const r = await runInClient(link, "atftp", [
          ...args,
          "-g",
          "-r",
          "one-mb.bin",
          "-l",
          file,
          link.serverIp,
          String(port),
        ]);
        assert.equal(r.code, 0, `atftp ${options.join(", ")}: ${r.stderr}`);
        assert.equal(readSha(file), sha256(fixture.files["one-mb.bin"]!), `atftp ${options.join(", ")}`);
      }
    });

    await t.test("100 concurrent transfers are all byte-identical", async () => {
      const before = service.stats();
      const names = ["undionly.kpxe", "one-mb.bin"];
      const jobs = Array.from({ length: 100 }, (_, i) => {
        const name = names[i % 2]!;
        const file = outFile();
        const flags = i % 3 === 0 ? [] : ["--tftp-blksize", "1468"];
        return runInClient(link, "curl", ["-sS", "--max-time", "300", ...flags, "-o", file, url(name)], 330_000).then(
          (r) => ({ r, file, name }),
        );
      });
      const results = await Promise.all(jobs);
      for (const { r, file, name } of results) {
        assert.equal(r.code, 0, `${name}: ${r.stderr}`);
        assert.equal(readSha(file), sha256(fixture.files[name]!), name);
      }
      const stats = service.stats();
      assert.ok(stats.transfersCompleted - before.transfersCompleted >= 100, JSON.stringify(stats));
      // The two files are read from disk at most once per transfer worker (each has its cache, at
      // most 4), never once per client.
      assert.ok(stats.cacheMisses - before.cacheMisses <= 2 * 4, JSON.stringify({ before, stats }));
    });
  } finally {
    await service.stop();
    link.destroy();
    fixture.cleanup();
    rmSync(out, { recursive: true, force: true });
  }
});
