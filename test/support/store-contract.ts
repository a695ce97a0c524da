import assert from "node:assert/strict";
import { test } from "node:test";
import type { ImageArch } from "../../src/files/state-dir.js";
import {
  type AuditFilter,
  type AuditRecord,
  NodeConflict,
  type NodeRecord,
  type Store,
} from "../../src/store/store.js";

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

  const image = (version: string, sha = "ab".repeat(32), arch: ImageArch = "x86_64") => ({
    name: "nixos",
    arch,
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
    assert.deepEqual(
      (await store.images.list("nixos")).map((r) => r.version),
      ["24.11", "24.05"],
    );
    assert.deepEqual(
      (await store.images.list()).map((r) => `${r.name}/${r.version}`),
      ["debian/1", "nixos/24.11", "nixos/24.05"],
    );
  });

  withStore("putting a version again replaces its record", async (store) => {
    await store.images.put(image("24.05", "00".repeat(32)));
    await store.images.put(image("24.05", "ff".repeat(32)));
    assert.equal((await store.images.get("nixos", "24.05"))?.files.kernel?.sha256, "ff".repeat(32));
    assert.equal((await store.images.list()).length, 1);
  });

  withStore("an image's builds of several architectures keep their own versions", async (store) => {
    await store.images.put(image("24.05", "00".repeat(32)));
    await store.images.put(image("24.05", "ff".repeat(32), "arm64"));
    assert.equal((await store.images.get("nixos", "24.05"))?.files.kernel?.sha256, "00".repeat(32));
    assert.deepEqual(await store.images.get("nixos", "24.05", "arm64"), image("24.05", "ff".repeat(32), "arm64"));
    assert.deepEqual(
      (await store.images.list("nixos")).map((r) => `${r.arch}/${r.version}`),
      ["x86_64/24.05", "arm64/24.05"],
    );
    assert.equal(await store.images.remove("nixos", "24.05", "arm64"), true);
    assert.equal(await store.images.get("nixos", "24.05", "arm64"), undefined);
    assert.ok(await store.images.get("nixos", "24.05"));
  });

  withStore("remove says whether something was removed", async (store) => {
    await store.images.put(image("24.05"));
    assert.equal(await store.images.remove("nixos", "24.05"), true);
    assert.equal(await store.images.remove("nixos", "24.05"), false);
    assert.deepEqual(await store.images.list(), []);
  });
  const node = (id: string, macs: string[], extra: Partial<NodeRecord> = {}): NodeRecord => ({
    id,
    macs,
    labels: {},
    state: "discovered",
    source: "api",
    stateChangedAt: "2026-11-25T00:00:00.000Z",
    createdAt: "2026-11-25T00:00:00.000Z",
    ...extra,
  });

  withStore("a node with several MACs is found by any of them, by UUID and by hostname", async (store) => {
    const record = node("n-1", ["52:54:00:00:00:01", "52:54:00:00:00:02"], {
      uuid: "4c4c4544-0000-1000-8000-000000000001",
      hostname: "worker-01",
      profile: "worker",
      ipAddress: "10.0.100.51",
      labels: { rack: "a1" },
      state: "ready",
      bmc: {
        type: "redfish",
        address: "10.0.200.51",
        port: 8443,
        username: "root",
        sealedPassword: "v1.abc",
        fingerprint: "ab".repeat(32),
      },
    });
    await store.nodes.create(record);
    assert.deepEqual(await store.nodes.get("n-1"), record);
    assert.deepEqual((await store.nodes.findByMac("52:54:00:00:00:02"))?.id, "n-1");
    assert.deepEqual((await store.nodes.findByUuid("4c4c4544-0000-1000-8000-000000000001"))?.id, "n-1");
    assert.deepEqual((await store.nodes.findByHostname("WORKER-01"))?.id, "n-1", "hostnames compare without case");
    assert.equal(await store.nodes.findByMac("52:54:00:00:00:03"), undefined);
    assert.equal(await store.nodes.findBySerial("SN-1"), undefined);
    await store.nodes.create(node("n-2", ["52:54:00:00:00:05"], { serial: "SN-1" }));
    assert.equal((await store.nodes.findBySerial("SN-1"))?.id, "n-2");
  });

  withStore("a MAC, UUID, hostname or address held by another node is a conflict naming the field", async (store) => {
    await store.nodes.create(
      node("n-1", ["52:54:00:00:00:01"], { uuid: "u-1", hostname: "a", ipAddress: "10.0.100.51" }),
    );
    const clash = async (record: NodeRecord, field: string) =>
      assert.rejects(
        store.nodes.create(record),
        (error: unknown) => error instanceof NodeConflict && error.field === field && error.holder === "n-1",
      );
    await clash(node("n-2", ["52:54:00:00:00:01"]), "macs");
    await clash(node("n-2", ["52:54:00:00:00:09"], { uuid: "u-1" }), "uuid");
    await clash(node("n-2", ["52:54:00:00:00:09"], { hostname: "a" }), "hostname");
    await clash(node("n-2", ["52:54:00:00:00:09"], { ipAddress: "10.0.100.51" }), "ipAddress");
    assert.equal((await store.nodes.list()).length, 1, "a refused create leaves nothing behind");
  });

  withStore("replace rewrites a node whole, its MACs included", async (store) => {
    await store.nodes.create(node("n-1", ["52:54:00:00:00:01", "52:54:00:00:00:02"], { hostname: "a" }));
    const changed = node("n-1", ["52:54:00:00:00:03"], { state: "ready", profile: "worker" });
    assert.equal(await store.nodes.replace(changed), true);
    assert.deepEqual(await store.nodes.get("n-1"), changed);
    assert.equal(await store.nodes.findByMac("52:54:00:00:00:01"), undefined);
    assert.equal(await store.nodes.replace(node("n-9", ["52:54:00:00:00:09"])), false);
  });

  withStore("nodes list in creation order and filter by state, profile and labels", async (store) => {
    await store.nodes.create(
      node("n-b", ["52:54:00:00:00:01"], { state: "ready", profile: "worker", labels: { rack: "a1", role: "db" } }),
    );
    await store.nodes.create(
      node("n-a", ["52:54:00:00:00:02"], { state: "ready", profile: "control-plane", labels: { rack: "a1" } }),
    );
    await store.nodes.create(node("n-c", ["52:54:00:00:00:03"]));
    assert.deepEqual(
      (await store.nodes.list()).map((n) => n.id),
      ["n-b", "n-a", "n-c"],
    );
    assert.deepEqual(
      (await store.nodes.list({ state: "ready" })).map((n) => n.id),
      ["n-b", "n-a"],
    );
    assert.deepEqual(
      (await store.nodes.list({ profile: "worker" })).map((n) => n.id),
      ["n-b"],
    );
    assert.deepEqual(
      (await store.nodes.list({ labels: { rack: "a1" } })).map((n) => n.id),
      ["n-b", "n-a"],
    );
    assert.deepEqual(
      (await store.nodes.list({ labels: { rack: "a1", role: "db" } })).map((n) => n.id),
      ["n-b"],
    );
    await store.nodes.replace({ ...(await store.nodes.get("n-a"))!, lastSeenAt: "2026-11-20T00:00:00.000Z" });
    assert.deepEqual(
      (await store.nodes.list({ seenBefore: "2026-11-24T00:00:00.000Z" })).map((n) => n.id),
      ["n-a"],
      "last seen, else created, before",
    );
  });

  withStore("removing a node frees its MACs and keeps its events", async (store) => {
    await store.nodes.create(node("n-1", ["52:54:00:00:00:01"]));
    await store.events.append({
      nodeId: "n-1",
      kind: "discovered",
      toState: "discovered",
      at: "2026-11-25T00:00:00.000Z",
      details: {},
    });
    assert.equal(await store.nodes.remove("n-1"), true);
    assert.equal(await store.nodes.remove("n-1"), false);
    await store.nodes.create(node("n-2", ["52:54:00:00:00:01"]));
    assert.equal((await store.events.list({ nodeId: "n-1" })).length, 1);
  });

  withStore("events get increasing seqs and filter by node, kind, seq, time and limit", async (store) => {
    const at = (minute: number) => `2026-11-25T00:0${minute}:00.000Z`;
    const a = await store.events.append({
      nodeId: "n-1",
      kind: "discovered",
      toState: "discovered",
      at: at(1),
      details: { firmware: "bios" },
    });
    const b = await store.events.append({
      nodeId: "n-2",
      kind: "transition",
      fromState: "ready",
      toState: "provisioning",
      at: at(2),
      details: {},
    });
    const c = await store.events.append({
      nodeId: "n-1",
      kind: "transition",
      fromState: "discovered",
      toState: "ready",
      at: at(3),
      details: {},
    });
    assert.ok(a.seq < b.seq && b.seq < c.seq);
    assert.deepEqual(await store.events.list(), [a, b, c]);
    assert.deepEqual(await store.events.list({ nodeId: "n-1" }), [a, c]);
    assert.deepEqual(await store.events.list({ kind: "transition" }), [b, c]);
    assert.deepEqual(await store.events.list({ afterSeq: a.seq }), [b, c]);
    assert.deepEqual(await store.events.list({ since: at(2) }), [b, c]);
    assert.deepEqual(await store.events.list({ limit: 2 }), [b, c], "the newest, oldest first");
    assert.deepEqual(await store.events.list({ afterSeq: 0, limit: 2 }), [a, b], "after a cursor: the next page");
    assert.deepEqual(await store.events.list({ afterSeq: b.seq, limit: 2 }), [c]);
  });

  withStore("a batch of sightings creates, touches and records its events at once", async (store) => {
    await store.nodes.create(node("n-1", ["52:54:00:00:00:01"], { uuid: "u-1" }));
    await store.nodes.create(node("n-2", ["52:54:00:00:00:02"]));
    const at = "2026-11-26T00:00:00.000Z";
    const events = await store.recordSightings({
      created: [node("n-3", ["52:54:00:00:00:03"], { lastSeenAt: at })],
      // n-2 reports n-1's UUID: the sighting is recorded, the UUID is not taken from n-1.
      seen: [{ id: "n-2", lastSeenAt: at, firmware: "efi-x64", uuid: "u-1" }],
      events: [{ nodeId: "n-3", kind: "discovered", toState: "discovered", at, details: {} }],
    });
    assert.equal(events.length, 1);
    assert.ok(events[0]!.seq > 0);
    assert.equal((await store.nodes.findByMac("52:54:00:00:00:03"))?.id, "n-3");
    const seen = await store.nodes.get("n-2");
    assert.equal(seen?.lastSeenAt, at);
    assert.equal(seen?.firmware, "efi-x64");
    assert.equal(seen?.uuid, undefined);
    assert.equal((await store.nodes.findByUuid("u-1"))?.id, "n-1");
  });

  withStore(
    "a sighting of a MAC recorded meanwhile by another writer touches that node, creates none",
    async (store) => {
      await store.nodes.create(node("n-1", ["52:54:00:00:00:01"]));
      const at = "2026-11-26T00:00:00.000Z";
      const events = await store.recordSightings({
        created: [
          node("n-2", ["52:54:00:00:00:01"], { lastSeenAt: at }),
          node("n-3", ["52:54:00:00:00:03"], { lastSeenAt: at }),
        ],
        seen: [],
        events: [
          { nodeId: "n-2", kind: "discovered", toState: "discovered", at, details: {} },
          { nodeId: "n-3", kind: "discovered", toState: "discovered", at, details: {} },
        ],
      });
      assert.deepEqual(
        events.map((e) => e.nodeId),
        ["n-3"],
      );
      assert.deepEqual(
        (await store.nodes.list()).map((n) => n.id),
        ["n-1", "n-3"],
      );
      assert.equal((await store.nodes.get("n-1"))?.lastSeenAt, at);
    },
  );

  withStore("two sighting batches of one new MAC at once (two servers, one DISCOVER) make one node", async (store) => {
    const at = "2026-11-26T00:00:00.000Z";
    const batch = (id: string) => ({
      created: [node(id, ["52:54:00:00:00:07"], { lastSeenAt: at })],
      seen: [],
      events: [{ nodeId: id, kind: "discovered", toState: "discovered" as const, at, details: {} }],
    });
    const [a, b] = await Promise.all([store.recordSightings(batch("n-a")), store.recordSightings(batch("n-b"))]);
    assert.equal(a.length + b.length, 1, "one discovered event");
    assert.equal((await store.nodes.list()).length, 1);
  });

  withStore("a secret is created once and then read back", async (store) => {
    const first = await store.secrets.getOrCreate("k", () => "one");
    assert.equal(first, "one");
    assert.equal(await store.secrets.getOrCreate("k", () => "two"), "one");
  });

  withStore("API tokens are found by hash, revoked once, and touched", async (store) => {
    await store.apiTokens.create({
      id: "t1",
      name: "ops",
      hash: "h1",
      role: "admin",
      createdAt: "2026-11-25T00:00:00.000Z",
    });
    assert.equal((await store.apiTokens.findByHash("h1"))?.id, "t1");
    assert.equal(await store.apiTokens.findByHash("nope"), undefined);
    await store.apiTokens.touch("t1", "2026-11-25T01:00:00.000Z");
    assert.equal(await store.apiTokens.revoke("t1", "2026-11-25T02:00:00.000Z"), true);
    assert.equal(await store.apiTokens.revoke("t1", "2026-11-25T03:00:00.000Z"), false);
    assert.equal(await store.apiTokens.revoke("t9", "2026-11-25T03:00:00.000Z"), false);
    assert.deepEqual(await store.apiTokens.list(), [
      {
        id: "t1",
        name: "ops",
        hash: "h1",
        role: "admin",
        createdAt: "2026-11-25T00:00:00.000Z",
        lastUsedAt: "2026-11-25T01:00:00.000Z",
        revokedAt: "2026-11-25T02:00:00.000Z",
      },
    ]);
  });

  withStore("an API token keeps its role, label scope and expiry; absent ones stay absent", async (store) => {
    const scoped = {
      id: "t2",
      name: "rack a1 on-call",
      hash: "h2",
      role: "operator" as const,
      scope: { rack: "a1", site: "fra" },
      createdAt: "2026-11-25T00:00:00.000Z",
      expiresAt: "2026-12-25T00:00:00.000Z",
    };
    const reader = { id: "t3", name: "grafana", hash: "h3", role: "viewer" as const, createdAt: scoped.createdAt };
    await store.apiTokens.create(scoped);
    await store.apiTokens.create(reader);
    assert.deepEqual(await store.apiTokens.findByHash("h2"), scoped);
    assert.deepEqual(await store.apiTokens.findByHash("h3"), reader);
    assert.deepEqual(await store.apiTokens.list(), [scoped, reader]);
  });

  const audit = (at: string, extra: Partial<Omit<AuditRecord, "seq">> = {}): Omit<AuditRecord, "seq"> => ({
    at,
    actor: { kind: "token", id: "t1", name: "ops" },
    action: "POST /nodes/{ref}/provision",
    target: "worker-01",
    summary: {},
    address: "10.0.100.7",
    outcome: "success",
    status: 200,
    ...extra,
  });

  withStore("audit records are appended with increasing seq and read back whole, newest first", async (store) => {
    const first = await store.audit.append(audit("2026-11-25T00:00:00.000Z", { summary: { labels: { rack: "a1" } } }));
    const oidc = audit("2026-11-25T00:01:00.000Z", {
      actor: { kind: "oidc", id: "3f1c", name: "alice", issuer: "https://idp.example.com/realms/ops" },
      action: "PATCH /nodes/{ref}",
      outcome: "denied",
      status: 403,
    });
    const { target: _target, ...untargeted } = audit("2026-11-25T00:02:00.000Z", {
      actor: { kind: "local", id: "root" },
      action: "token create",
      address: "local",
    });
    const second = await store.audit.append(oidc);
    const third = await store.audit.append(untargeted);
    assert.ok(first.seq < second.seq && second.seq < third.seq);
    assert.deepEqual(await store.audit.list(), [third, second, first]);
    assert.deepEqual(third, { ...untargeted, seq: third.seq });
    assert.deepEqual(second, { ...oidc, seq: second.seq });
  });

  withStore(
    "audit filters: actor id or name, action exact or prefix*, target, outcome, time; paging by seq",
    async (store) => {
      const minute = (m: number) => `2026-11-25T00:0${m}:00.000Z`;
      await store.audit.append(audit(minute(0)));
      await store.audit.append(
        audit(minute(1), { action: "POST /nodes/{ref}/retire", outcome: "failed", status: 409 }),
      );
      await store.audit.append(
        audit(minute(2), { actor: { kind: "token", id: "t2", name: "ci" }, target: "worker-02" }),
      );
      await store.audit.append(audit(minute(3), { action: "DELETE /nodes/{ref}", outcome: "denied", status: 403 }));
      await store.audit.append(audit(minute(4), { action: "POST /nodes_%" }));
      const at = async (filter: AuditFilter) => (await store.audit.list(filter)).map((r) => r.at.slice(15, 16));
      assert.deepEqual(await at({ actor: "t2" }), ["2"]);
      assert.deepEqual(await at({ actor: "ci" }), ["2"]);
      assert.deepEqual(await at({ action: "POST /nodes/{ref}/retire" }), ["1"]);
      assert.deepEqual(await at({ action: "POST /nodes/*" }), ["2", "1", "0"]);
      assert.deepEqual(await at({ action: "POST /nodes_*" }), ["4"], "a prefix's _ and % are not wildcards");
      assert.deepEqual(await at({ target: "worker-02" }), ["2"]);
      assert.deepEqual(await at({ outcome: "denied" }), ["3"]);
      assert.deepEqual(await at({ outcome: "success", since: minute(1), until: minute(4) }), ["2"]);
      const page = await store.audit.list({ limit: 2 });
      assert.deepEqual(
        page.map((r) => r.at.slice(15, 16)),
        ["4", "3"],
      );
      assert.deepEqual(await at({ limit: 2, beforeSeq: page.at(-1)!.seq }), ["2", "1"]);
      assert.deepEqual(await at({ limit: 2, beforeSeq: (await store.audit.list({ limit: 4 })).at(-1)!.seq }), ["0"]);
    },
  );

  withStore("a callback token is consumed once, and not after it expired", async (store) => {
    const base = {
      nodeId: "n-1",
      provisioningId: "p-1",
      createdAt: "2026-11-25T00:00:00.000Z",
      expiresAt: "2026-11-25T00:30:00.000Z",
    };
    await store.callbackTokens.issue({ ...base, hash: "c1" });
    await store.callbackTokens.issue({ ...base, hash: "c2" });
    const first = await store.callbackTokens.consume("c1", "2026-11-25T00:10:00.000Z");
    assert.equal(first.ok, true);
    assert.equal(first.ok && first.token.provisioningId, "p-1");
    assert.equal((await store.callbackTokens.consume("c1", "2026-11-25T00:11:00.000Z")).ok, false);
    assert.deepEqual(pick(await store.callbackTokens.consume("c1", "2026-11-25T00:11:00.000Z")), "used");
    assert.deepEqual(pick(await store.callbackTokens.consume("c2", "2026-11-25T00:30:00.000Z")), "expired");
    assert.deepEqual(pick(await store.callbackTokens.consume("zz", "2026-11-25T00:10:00.000Z")), "unknown");
  });

  withStore("a callback token is issued once per hash and found without being used", async (store) => {
    const base = {
      nodeId: "n-1",
      provisioningId: "p-1",
      createdAt: "2026-11-25T00:00:00.000Z",
      expiresAt: "2026-11-25T00:30:00.000Z",
    };
    assert.equal(await store.callbackTokens.issue({ ...base, hash: "c1" }), true);
    assert.equal(
      await store.callbackTokens.issue({ ...base, hash: "c1", expiresAt: "2026-11-25T09:00:00.000Z" }),
      false,
    );
    assert.equal((await store.callbackTokens.find("c1"))?.expiresAt, base.expiresAt, "a second issue moves nothing");
    assert.equal((await store.callbackTokens.find("c1"))?.usedAt, undefined);
    assert.equal(await store.callbackTokens.find("zz"), undefined);
  });

  withStore("revoking a node's callback tokens leaves the used ones as evidence", async (store) => {
    const base = {
      nodeId: "n-1",
      provisioningId: "p-1",
      createdAt: "2026-11-25T00:00:00.000Z",
      expiresAt: "2026-11-25T00:30:00.000Z",
    };
    await store.callbackTokens.issue({ ...base, hash: "c1" });
    await store.callbackTokens.issue({ ...base, hash: "c2" });
    await store.callbackTokens.consume("c1", "2026-11-25T00:10:00.000Z");
    await store.callbackTokens.revokeForNode("n-1");
    assert.equal(pick(await store.callbackTokens.consume("c2", "2026-11-25T00:10:00.000Z")), "unknown");
    assert.equal(pick(await store.callbackTokens.consume("c1", "2026-11-25T00:10:00.000Z")), "used");
  });

  // What a second server on the same database would do at the same moment (PostgreSQL); the
  // embedded store serialises these, and must give the same answers.
  withStore("of two consumers of one callback token at once, exactly one wins", async (store) => {
    await store.callbackTokens.issue({
      hash: "c1",
      nodeId: "n-1",
      provisioningId: "p-1",
      createdAt: "2026-11-25T00:00:00.000Z",
      expiresAt: "2026-11-25T00:30:00.000Z",
    });
    const results = await Promise.all(
      Array.from({ length: 4 }, () => store.callbackTokens.consume("c1", "2026-11-25T00:10:00.000Z")),
    );
    assert.deepEqual(results.map(pick).sort(), ["ok", "used", "used", "used"]);
  });

  withStore("secrets created at once agree on one value", async (store) => {
    const values = await Promise.all(["a", "b", "c"].map((v) => store.secrets.getOrCreate("k", () => v)));
    assert.equal(new Set(values).size, 1);
  });

  withStore("two nodes created at once with one MAC: one is kept, the other is a NodeConflict", async (store) => {
    const results = await Promise.allSettled([
      store.nodes.create(node("n-1", ["52:54:00:00:00:01"])),
      store.nodes.create(node("n-2", ["52:54:00:00:00:01"])),
    ]);
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    const refused = results.find((r) => r.status === "rejected");
    assert.ok(refused && refused.reason instanceof NodeConflict && refused.reason.field === "macs", String(refused));
    assert.equal((await store.nodes.list()).length, 1);
  });
}

function pick(result: { ok: boolean; reason?: string }): string {
  return result.ok ? "ok" : (result.reason ?? "?");
}
