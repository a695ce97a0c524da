import assert from "node:assert/strict";
import { test } from "node:test";
import type { Store } from "./store.js";

/**
 * The behaviour every Store implementation owes its callers. Each implementation's test calls this
 * with a factory that gives a fresh, empty store (a PostgreSQL one: a fresh schema).
 */
export function storeContract(name: string, openEmpty: () => Promise<Store>): void {
  const withStore = (title: string, body: (store: Store) => Promise<void>) =>
    test(`${name}: ${title}`, async () => {
      const store = await openEmpty();
      try {
        await body(store);
      } finally {
        await store.close();
      }
    });

  const image = (version: string, sha = "ab".repeat(32)) => ({
    name: "nixos",
    version,
    files: { kernel: { size: 10, sha256: sha }, initrd: { size: 20, sha256: sha } },
    cmdline: "quiet",
    addedAt: "2026-11-25T00:00:00.000Z",
  });

  withStore("is migrated to a positive schema version", async (store) => {
    assert.ok((await store.schemaVersion()) >= 1);
  });

  withStore("an image version put is got back whole", async (store) => {
    await store.images.put(image("24.05"));
    assert.deepEqual(await store.images.get("nixos", "24.05"), image("24.05"));
    assert.equal(await store.images.get("nixos", "24.11"), undefined);
  });

  withStore("versions list in the order they were added", async (store) => {
    await store.images.put(image("24.11"));
    await store.images.put(image("24.05"));
    await store.images.put({ ...image("1"), name: "debian" });
    assert.deepEqual((await store.images.list("nixos")).map((r) => r.version), ["24.11", "24.05"]);
    assert.deepEqual((await store.images.list()).map((r) => `${r.name}/${r.version}`), ["debian/1", "nixos/24.11", "nixos/24.05"]);
  });

  withStore("putting a version again replaces its record", async (store) => {
    await store.images.put(image("24.05", "00".repeat(32)));
    await store.images.put(image("24.05", "ff".repeat(32)));
    assert.equal((await store.images.get("nixos", "24.05"))?.files.kernel?.sha256, "ff".repeat(32));
    assert.equal((await store.images.list()).length, 1);
  });

  withStore("remove says whether something was removed", async (store) => {
    await store.images.put(image("24.05"));
    assert.equal(await store.images.remove("nixos", "24.05"), true);
    assert.equal(await store.images.remove("nixos", "24.05"), false);
    assert.deepEqual(await store.images.list(), []);
  });
}
