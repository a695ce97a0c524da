import type { Role } from "../config/roles.js";
import type { ImageArch } from "../files/image-arch.js";
import type { NodeState } from "../lifecycle/lifecycle.js";

/**
 * The state Centra PXE keeps, behind one interface so the embedded SQLite file and a shared
 * PostgreSQL database (PRODUCT.md §6) are interchangeable. Every method is async because a
 * network database is; the SQLite implementation answers at once.
 */
export interface Store {
  readonly images: ImageRepository;
  readonly nodes: NodeRepository;
  readonly events: EventRepository;
  readonly apiTokens: ApiTokenRepository;
  readonly callbackTokens: CallbackTokenRepository;
  readonly secrets: SecretRepository;
  readonly audit: AuditRepository;
  /**
   * Write a batch of sightings (new discovered nodes, last-seen updates, their events) in one
   * transaction: one commit for a burst of machines instead of one fsync each. A new node whose MAC
   * another writer recorded meanwhile (another server saw the same DISCOVER) is not created: that
   * node is touched instead and the new one's events are dropped; the returned events say what was stored.
   */
  recordSightings(batch: SightingBatch): Promise<NodeEvent[]>;
  /** The schema version the store has migrated to. */
  schemaVersion(): Promise<number>;
  close(): Promise<void>;
  /**
   * What other servers on the same database changed (PostgreSQL: LISTEN/NOTIFY); absent for the
   * embedded store, which one process owns.
   */
  readonly changes?: StoreChangeFeed;
  /**
   * Run `body` while no other server on this store runs one of the same `name` (PostgreSQL: an
   * advisory lock), e.g. the config's nodes synced by servers starting together; absent for the
   * embedded store, which one process owns.
   */
  serialized?<T>(name: string, body: () => Promise<T>): Promise<T>;
}

/** Changes committed by other servers sharing this store. */
export interface StoreChangeFeed {
  /** Events another server appended, once committed (each delivered once). Returns the unsubscribe function. */
  onEvents(listener: (events: NodeEvent[]) => void): () => void;
}

/** One file of an image version, as recorded when it was added. */
export interface ImageFileRecord {
  size: number;
  sha256: string;
}

export interface ImageVersionRecord {
  name: string;
  /** The build line the version belongs to (src/files/state-dir.ts): its own versions and `current`. */
  arch: ImageArch;
  version: string;
  /** Role (`kernel`, `initrd`) → the file's size and digest. */
  files: Record<string, ImageFileRecord>;
  /** Extra kernel command line the image needs (appended before the profile's). */
  cmdline: string;
  addedAt: string;
}

export interface ImageRepository {
  put(record: ImageVersionRecord): Promise<void>;
  /** `arch` defaults to x86_64 (DEFAULT_IMAGE_ARCH), the architecture of every image made before arches. */
  get(name: string, version: string, arch?: ImageArch): Promise<ImageVersionRecord | undefined>;
  /** All versions of every architecture, by name then by the order they were added. */
  list(name?: string): Promise<ImageVersionRecord[]>;
  /** Returns whether a record was removed. */
  remove(name: string, version: string, arch?: ImageArch): Promise<boolean>;
}

// The states belong to the lifecycle; re-exported so readers of the store's types find them here.
export { NODE_STATES, type NodeState } from "../lifecycle/lifecycle.js";

/** Where a node came from; `config` nodes have their profile, hostname and address owned by the config file. */
export type NodeSource = "config" | "api" | "discovered";

/**
 * One machine of the inventory. A machine is recognised by any of its MACs or by its SMBIOS UUID:
 * operators replace NICs and boot from different ports.
 */
export interface NodeRecord {
  /** Stable id, independent of any MAC (`n-` and 12 hex digits). */
  id: string;
  /** Normalised `aa:bb:cc:dd:ee:ff`, at least one; the first is the one DHCP reservations are keyed by. */
  macs: string[];
  /** SMBIOS system UUID as last seen (lower case), or as registered. */
  uuid?: string;
  /** SMBIOS serial number as last seen. */
  serial?: string;
  /** DHCP option 12 and `centra.hostname=`. */
  hostname?: string;
  /** A profile of the config; a node without one cannot be provisioned. */
  profile?: string;
  /** The fixed address (yiaddr) DHCP reserves for this node. */
  ipAddress?: string;
  /** Pin the profile's image to this version instead of `current`. */
  imageVersion?: string;
  labels: Record<string, string>;
  /** Firmware as last seen by DHCP (`bios`, `efi-x64`, …) or iPXE (`pcbios`, `efi`). */
  firmware?: string;
  state: NodeState;
  source: NodeSource;
  /** The current provisioning attempt; callback tokens are bound to it. */
  provisioningId?: string;
  /** When a node in `provisioning` becomes `failed` without a callback (ISO time). */
  provisionDeadline?: string;
  stateChangedAt: string;
  createdAt: string;
  lastSeenAt?: string;
  /** The machine's BMC (issue 13): how to reach it; its password only as a file path or sealed. */
  bmc?: NodeBmc;
}

/**
 * Where a node's BMC is and how to log in (src/bmc). The password is never kept in the clear:
 * either `passwordFile`, a file on the server read at each use (config nodes), or `sealedPassword`,
 * AES-256-GCM under a key the server holds in `secrets`. Neither is ever returned by the API.
 */
export interface NodeBmc {
  type: "ipmi" | "redfish";
  address: string;
  port?: number;
  username: string;
  passwordFile?: string;
  sealedPassword?: string;
  /** Redfish over HTTPS: the certificate's pinned sha256. */
  fingerprint?: string;
  /** Redfish: `http` for a lab BMC (default `https`). */
  scheme?: "http" | "https";
  /** IPMI: the RMCP+ cipher suite (`ipmitool -C`). */
  cipherSuite?: number;
}

export interface NodeFilter {
  state?: NodeState;
  profile?: string;
  /** Every label given must match. */
  labels?: Record<string, string>;
  /** Only nodes last seen (or, never seen, created) before this ISO time. */
  seenBefore?: string;
}

/** A uniqueness clash: which field and which node already holds the value. */
export class NodeConflict extends Error {
  constructor(
    readonly field: "macs" | "uuid" | "hostname" | "ipAddress" | "id",
    readonly value: string,
    readonly holder: string | undefined,
  ) {
    super(`${field} ${value} already belongs to node ${holder ?? "(unknown)"}`);
    this.name = "NodeConflict";
  }
}

export interface NodeRepository {
  /** Insert a new node; throws NodeConflict when a MAC, UUID, hostname or address is taken. */
  create(record: NodeRecord): Promise<void>;
  /** Replace a node whole (MACs included); throws NodeConflict like create. Returns false when it does not exist. */
  replace(record: NodeRecord): Promise<boolean>;
  get(id: string): Promise<NodeRecord | undefined>;
  findByMac(mac: string): Promise<NodeRecord | undefined>;
  findByUuid(uuid: string): Promise<NodeRecord | undefined>;
  findByHostname(hostname: string): Promise<NodeRecord | undefined>;
  /** The first node (by creation) with this SMBIOS serial; serials are not unique, so this is a hint, never an identity. */
  findBySerial(serial: string): Promise<NodeRecord | undefined>;
  /** By creation order. */
  list(filter?: NodeFilter): Promise<NodeRecord[]>;
  /**
   * How many nodes hold each value of `field` (no profile: the key ""), without reading the nodes:
   * the dashboard's counts over 10,000 nodes. Optional; without it the API counts a full `list()`.
   */
  countBy?(field: "state" | "profile"): Promise<Record<string, number>>;
  remove(id: string): Promise<boolean>;
}

/** One lifecycle event, kept after its node is gone. */
export interface NodeEvent {
  /** Increasing; SSE clients resume from it (`Last-Event-ID`). */
  seq: number;
  nodeId: string;
  /** E.g. `discovered`, `transition`, `updated`, `removed`, `callback-rejected`. */
  kind: string;
  fromState?: NodeState;
  toState?: NodeState;
  at: string;
  details: Record<string, unknown>;
}

export interface EventFilter {
  nodeId?: string;
  kind?: string;
  /** Only events with a larger seq; with `limit`, the page of the OLDEST `limit` after it. */
  afterSeq?: number;
  /** Only events at or after this ISO time. */
  since?: string;
  /** At most this many: without `afterSeq` the newest, with it the next page (always oldest first). */
  limit?: number;
}

export interface EventRepository {
  /** Append an event; returns it with its seq. */
  append(event: Omit<NodeEvent, "seq">): Promise<NodeEvent>;
  list(filter?: EventFilter): Promise<NodeEvent[]>;
}

// The roles belong to the config (auth.oidc.roleMap names them); re-exported for the store's readers.
export { ROLES, type Role } from "../config/roles.js";

/** An API bearer token; only the sha256 of the secret is kept. */
export interface ApiTokenRecord {
  id: string;
  name: string;
  /** Hex sha256 of the whole token string. */
  hash: string;
  /** What it may do; tokens made before roles existed are `admin` (they could do everything). */
  role: Role;
  /** Only nodes carrying every one of these labels (`rack=a1`); absent: the whole fleet. */
  scope?: Record<string, string>;
  createdAt: string;
  /** Refused from this ISO time on; absent: until revoked. */
  expiresAt?: string;
  lastUsedAt?: string;
  revokedAt?: string;
}

export interface ApiTokenRepository {
  create(record: ApiTokenRecord): Promise<void>;
  findByHash(hash: string): Promise<ApiTokenRecord | undefined>;
  list(): Promise<ApiTokenRecord[]>;
  /** Returns false when there is no such token or it was already revoked. */
  revoke(id: string, at: string): Promise<boolean>;
  touch(id: string, at: string): Promise<void>;
}

/** A single-use token handed to one node's installer for one provisioning attempt. */
export interface CallbackTokenRecord {
  hash: string;
  nodeId: string;
  provisioningId: string;
  createdAt: string;
  expiresAt: string;
  usedAt?: string;
}

export type ConsumeResult =
  | { ok: true; token: CallbackTokenRecord }
  | { ok: false; reason: "unknown" | "used" | "expired"; token?: CallbackTokenRecord };

export interface CallbackTokenRepository {
  /** Record a token; returns false (and changes nothing) when that hash is already recorded. */
  issue(record: CallbackTokenRecord): Promise<boolean>;
  /** A token by hash, without using it (the callback checks the node before spending it). */
  find(hash: string): Promise<CallbackTokenRecord | undefined>;
  /** Mark a token used, atomically: of two callers with the same token exactly one gets ok. */
  consume(hash: string, now: string): Promise<ConsumeResult>;
  /** Forget every unused token of a node (a new attempt, a retirement, a removal). */
  revokeForNode(nodeId: string): Promise<void>;
}

/** Server-side secrets (the callback token key), created once and kept with the inventory. */
export interface SecretRepository {
  /** The secret called `name`; `create` makes it the first time (atomically: one value wins). */
  getOrCreate(name: string, create: () => string): Promise<string>;
}

/**
 * Who made a change: a local API token, a subject of the configured identity provider (OIDC), or
 * a user of the CLI working on the store file itself.
 */
export interface AuditActor {
  kind: "token" | "oidc" | "local";
  /** The token id, the JWT's `sub`, or the local user name. */
  id: string;
  /** The token's name, or the JWT's `name`/`preferred_username` when it has one. */
  name?: string;
  /** The JWT's `iss` (kind `oidc` only): a `sub` is unique per issuer only. */
  issuer?: string;
}

/** How a change ended: done, refused for the caller's role or scope, or failed (bad input, conflict, error). */
export type AuditOutcome = "success" | "denied" | "failed";
export const AUDIT_OUTCOMES: readonly AuditOutcome[] = ["success", "denied", "failed"];

/** One change (or attempted change) through the API or the CLI. Kept forever, like node events. */
export interface AuditRecord {
  /** Increasing; the cursor of `AuditFilter.beforeSeq`. */
  seq: number;
  at: string;
  actor: AuditActor;
  /** The route as declared (`POST /nodes/{ref}/provision`) or the CLI command (`token create`). */
  action: string;
  /** What it was done to, as the caller named it: a node ref, a token id, an image. */
  target?: string;
  /** The change, never a secret: the fields of the request body, redacted and shortened. */
  summary: Record<string, unknown>;
  /** The caller's IP address, or `local` for the CLI. */
  address: string;
  outcome: AuditOutcome;
  /** The HTTP status answered (the CLI: 200 done, 400 refused input, 404 not found, 500 failed). */
  status: number;
}

export interface AuditFilter {
  /** Matches the actor's id or name exactly. */
  actor?: string;
  /** Matches `action` exactly, or every action starting with it when it ends in `*`. */
  action?: string;
  target?: string;
  outcome?: AuditOutcome;
  /** At or after this ISO time. */
  since?: string;
  /** Before this ISO time. */
  until?: string;
  /** Only records with a smaller seq (the previous page's last). */
  beforeSeq?: number;
  /** At most this many, newest first. */
  limit?: number;
}

export interface AuditRepository {
  /** Append a record; returns it with its seq. */
  append(record: Omit<AuditRecord, "seq">): Promise<AuditRecord>;
  /** Newest first. */
  list(filter?: AuditFilter): Promise<AuditRecord[]>;
}

/** What `Store.recordSightings` writes at once. */
export interface SightingBatch {
  /** New `discovered` nodes. */
  created: NodeRecord[];
  /** Known nodes seen again: their last-seen time and identity as reported. */
  seen: { id: string; lastSeenAt: string; firmware?: string; uuid?: string; serial?: string }[];
  events: Omit<NodeEvent, "seq">[];
}
