import assert from "node:assert/strict";
import { test } from "node:test";
import type { LeaseRecord, LeaseStore } from "../../src/contracts/lease-store.js";

export const lease = (address: string, mac: string, extra: Partial<LeaseRecord> = {}): LeaseRecord => ({
  address,
  mac,
  expiresAt: 2_000_000,
  state: "bound",
  updatedAt: 1_000_000,
  ...extra,
});

/**
 * What every LeaseStore owes the DHCP part. `openEmpty` gives a fresh store and a way to open a
 * second one on the same database (another server), which a store shared by several servers
 * (`shared`) must keep consistent with the first: claims, refusals and change notices.
 */
export function leaseStoreContract(
  name: string,
  openEmpty: () => Promise<{ store: LeaseStore; other?: () => Promise<LeaseStore>; close(): Promise<void> }>,
  options: { shared: boolean },
): void {
  const withStores = (
    title: string,
    body: (store: LeaseStore, other: (() => Promise<LeaseStore>) | undefined) => Promise<void>,
  ) =>
    test(`${name} leases: ${title}`, async () => {
      const opened = await openEmpty();
      try {
        await body(opened.store, opened.other);
      } finally {
        await opened.close();
      }
    });

  withStores("a batch is saved, upserted by address, and loaded back", async (store) => {
    await store.saveLeases([
      lease("10.0.0.10", "aa:bb:cc:dd:ee:01", { hostname: "a", clientId: "01aa" }),
      lease("10.0.0.9", "aa:bb:cc:dd:ee:02"),
    ]);
    await store.saveLeases([lease("10.0.0.10", "aa:bb:cc:dd:ee:01", { state: "released", expiresAt: 1_000_000 })]);
    const rows = (await store.loadLeases()).sort((a, b) => a.address.localeCompare(b.address));
    assert.deepEqual(
      rows.map((l) => [l.address, l.mac, l.state, l.hostname]),
      [
        ["10.0.0.10", "aa:bb:cc:dd:ee:01", "released", undefined],
        ["10.0.0.9", "aa:bb:cc:dd:ee:02", "bound", undefined],
      ],
    );
    assert.equal(rows[1]!.expiresAt, 2_000_000);
  });

  if (!options.shared) return;

  withStores(
    "another MAC's live lease is refused, naming its holder; the rest of the batch is saved",
    async (store) => {
      await store.saveLeases([lease("10.0.0.1", "aa:00:00:00:00:01")]);
      const result = await store.claimLeases!([
        lease("10.0.0.1", "aa:00:00:00:00:02"),
        lease("10.0.0.2", "aa:00:00:00:00:02"),
      ]);
      assert.deepEqual(
        result.refused.map((l) => [l.address, l.mac]),
        [["10.0.0.1", "aa:00:00:00:00:01"]],
      );
      const rows = await store.loadLeases();
      assert.equal(rows.find((l) => l.address === "10.0.0.1")?.mac, "aa:00:00:00:00:01");
      assert.equal(rows.find((l) => l.address === "10.0.0.2")?.mac, "aa:00:00:00:00:02");
    },
  );

  withStores(
    "a released or expired address is taken over; a DECLINE and a fixed address always write",
    async (store) => {
      await store.saveLeases([
        lease("10.0.0.1", "aa:00:00:00:00:01", { state: "released" }),
        lease("10.0.0.2", "aa:00:00:00:00:01", { expiresAt: 1_500_000 }),
        lease("10.0.0.3", "aa:00:00:00:00:01"),
        lease("10.0.0.4", "aa:00:00:00:00:01"),
      ]);
      const result = await store.claimLeases!([
        lease("10.0.0.1", "aa:00:00:00:00:02", { updatedAt: 1_600_000 }),
        lease("10.0.0.2", "aa:00:00:00:00:02", { updatedAt: 1_600_000 }),
        lease("10.0.0.3", "", { state: "declined", updatedAt: 1_600_000 }),
        lease("10.0.0.4", "aa:00:00:00:00:02", { updatedAt: 1_600_000, fixed: true }),
      ]);
      assert.deepEqual(result.refused, []);
      assert.deepEqual((await store.loadLeases()).map((l) => l.mac).sort(), [
        "",
        "aa:00:00:00:00:02",
        "aa:00:00:00:00:02",
        "aa:00:00:00:00:02",
      ]);
    },
  );

  withStores(
    "an offer holds its address against other MACs, and never shortens its own client's lease",
    async (store) => {
      await store.claimLeases!([lease("10.0.0.1", "aa:00:00:00:00:01", { state: "offered", expiresAt: 1_030_000 })]);
      const clash = await store.claimLeases!([lease("10.0.0.1", "aa:00:00:00:00:02", { state: "offered" })]);
      assert.deepEqual(
        clash.refused.map((l) => [l.mac, l.state]),
        [["aa:00:00:00:00:01", "offered"]],
      );
      // The offered client takes it: the REQUEST's lease replaces the offer.
      assert.deepEqual((await store.claimLeases!([lease("10.0.0.1", "aa:00:00:00:00:01")])).refused, []);
      // Offered again what it holds (a DISCOVER while bound): the lease stays as it was.
      await store.claimLeases!([lease("10.0.0.1", "aa:00:00:00:00:01", { state: "offered", expiresAt: 1_030_000 })]);
      const [row] = await store.loadLeases();
      assert.deepEqual([row!.state, row!.expiresAt], ["bound", 2_000_000]);
    },
  );

  withStores("a MAC holds one address: binding another releases the first", async (store) => {
    await store.claimLeases!([lease("10.0.0.1", "aa:00:00:00:00:01")]);
    await store.claimLeases!([lease("10.0.0.2", "aa:00:00:00:00:01", { updatedAt: 1_100_000 })]);
    const rows = (await store.loadLeases()).sort((a, b) => a.address.localeCompare(b.address));
    assert.deepEqual(
      rows.map((l) => [l.address, l.state]),
      [
        ["10.0.0.1", "released"],
        ["10.0.0.2", "bound"],
      ],
    );
  });

  withStores(
    "a claim refused for another MAC's offer stays refused when the same batch releases that offer",
    async (store) => {
      // One server offered 10.0.0.1 to the first MAC; the other offered it 10.0.0.2, and in one
      // batch commits that binding and an offer of 10.0.0.1 to a second MAC (a boot storm).
      await store.claimLeases!([lease("10.0.0.1", "aa:00:00:00:00:01", { state: "offered", expiresAt: 1_030_000 })]);
      const result = await store.claimLeases!([
        lease("10.0.0.1", "aa:00:00:00:00:02", { state: "offered", expiresAt: 1_030_100, updatedAt: 1_000_100 }),
        lease("10.0.0.2", "aa:00:00:00:00:01", { updatedAt: 1_000_100 }),
      ]);
      // Not written for the second MAC, so refused, with what the row holds now: the server
      // learns it is free and claims it again, rather than offer an address the row does not name.
      assert.deepEqual(
        result.refused.map((l) => [l.address, l.mac, l.state]),
        [["10.0.0.1", "aa:00:00:00:00:01", "released"]],
      );
      const rows = (await store.loadLeases()).sort((a, b) => a.address.localeCompare(b.address));
      assert.deepEqual(
        rows.map((l) => [l.address, l.mac, l.state]),
        [
          ["10.0.0.1", "aa:00:00:00:00:01", "released"],
          ["10.0.0.2", "aa:00:00:00:00:01", "bound"],
        ],
      );
    },
  );

  withStores("of two servers claiming one address for two MACs at once, exactly one gets it", async (store, other) => {
    const second = await other!();
    try {
      for (let i = 0; i < 20; i++) {
        const address = `10.0.1.${i}`;
        const [a, b] = await Promise.all([
          store.claimLeases!([lease(address, "aa:00:00:00:00:01")]),
          second.claimLeases!([lease(address, "aa:00:00:00:00:02")]),
        ]);
        assert.equal(a.refused.length + b.refused.length, 1, `one refusal for ${address}`);
      }
    } finally {
      await second.close?.();
    }
  });

  withStores("another server hears of a committed lease, and finds a client's record by MAC", async (store, other) => {
    const second = await other!();
    try {
      const heard: LeaseRecord[] = [];
      const stop = second.watch!((records) => heard.push(...records));
      // The listening connection opens on first use; give it a moment before the write it must hear.
      await new Promise((resolve) => setTimeout(resolve, 300));
      await store.saveLeases([lease("10.0.0.7", "aa:00:00:00:00:07")]);
      const deadline = Date.now() + 5_000;
      while (!heard.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      stop();
      assert.deepEqual(
        heard.map((l) => [l.address, l.mac]),
        [["10.0.0.7", "aa:00:00:00:00:07"]],
      );
      assert.deepEqual(
        (await second.findByMac!("aa:00:00:00:00:07")).map((l) => l.address),
        ["10.0.0.7"],
      );
    } finally {
      await second.close?.();
    }
  });
}
