import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { FileCache, type FileContent } from "./file-source.js";
import { decodePacket, Opcode } from "./packet.js";

/** Read a whole file the way a transfer does: runs of up to `window` blocks, split into datagrams. */
async function readAll(content: FileContent, blockSize: number, window: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  const last = Math.floor(content.size / blockSize) + 1;
  for (let block = 1; block <= last; ) {
    const upTo = Math.min(last, block + window - 1);
    let run = content.peek(block, upTo, blockSize);
    if (!run) {
      await content.load(block, blockSize);
      run = content.peek(block, upTo, blockSize);
    }
    assert.ok(run && run.blocks >= 1 && block + run.blocks - 1 <= upTo, `block ${block}`);
    for (let i = 0; i < run.blocks; i++, block++) {
      const datagram = run.bytes.subarray(i * (blockSize + 4), (i + 1) * (blockSize + 4));
      const p = decodePacket(datagram);
      assert.ok(p.opcode === Opcode.Data && p.block === (block & 0xffff), `block ${block}`);
      parts.push(p.data);
    }
  }
  return Buffer.concat(parts);
}

test("cached and streamed files give the same datagrams for every block size", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cpxe-tftp-src-"));
  try {
    for (const size of [0, 1, 512, 1468 * 3, 300_001]) {
      const path = join(dir, `f${size}`);
      const bytes = randomBytes(size);
      writeFileSync(path, bytes);
      const cached = new FileCache({
        maxBytes: 1 << 24,
        maxFileBytes: 1 << 24,
        chunkBytes: 4096,
        maxNetasciiBytes: 1 << 20,
      });
      const streamed = new FileCache({
        maxBytes: 1 << 24,
        maxFileBytes: 0,
        chunkBytes: 4096,
        maxNetasciiBytes: 1 << 20,
      });
      for (const blockSize of [8, 512, 1468, 65464]) {
        if (size / blockSize > 5000) continue;
        for (const cache of [cached, streamed]) {
          // Windows of 1 (lock-step), 7 (runs cut at chunk ends) and 64 blocks.
          for (const window of [1, 7, 64]) {
            const content = await cache.open(path, statSync(path), false);
            assert.ok(
              (await readAll(content, blockSize, window)).equals(bytes),
              `size ${size} blksize ${blockSize} window ${window}`,
            );
            await content.close();
          }
        }
      }
      assert.equal(cached.misses, 1, "the file is read once, then served from the cache");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the cache stays within its byte bound, dropping the least recently used", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cpxe-tftp-src-"));
  try {
    const cache = new FileCache({ maxBytes: 10_000, maxFileBytes: 6_000, chunkBytes: 4096, maxNetasciiBytes: 1 << 20 });
    for (let i = 0; i < 5; i++) {
      const path = join(dir, `f${i}`);
      writeFileSync(path, randomBytes(4000));
      const content = await cache.open(path, statSync(path), false);
      content.peek(1, 1, 512);
      assert.ok(cache.cachedBytes <= 10_000, String(cache.cachedBytes));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a changed file is read again, not served stale", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cpxe-tftp-src-"));
  try {
    const cache = new FileCache();
    const path = join(dir, "f");
    writeFileSync(path, "old");
    let content = await cache.open(path, statSync(path), false);
    assert.equal(decodePacket(content.peek(1, 1, 512)!.bytes).opcode, Opcode.Data);
    writeFileSync(path, "newer");
    content = await cache.open(path, statSync(path), false);
    const p = decodePacket(content.peek(1, 1, 512)!.bytes);
    assert.ok(p.opcode === Opcode.Data && p.data.toString() === "newer");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
