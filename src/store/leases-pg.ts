import type { LeaseRecord, LeaseSaveResult, LeaseState, LeaseStore } from "../contracts/lease-store.js";
import { LEASES_CHANNEL, notifyIn, type PgStore, splitNotifyPayload } from "./pg-store.js";

interface LeaseRow {
  address: string;
  mac: string;
  client_id: string | null;
  hostname: string | null;
  expires_at: string;
  state: string;
  updated_at: string;
}

function fromRow(row: LeaseRow): LeaseRecord {
  return {
    address: row.address,
    mac: row.mac,
    clientId: row.client_id ?? undefined,
    hostname: row.hostname ?? undefined,
    expiresAt: Number(row.expires_at),
    state: row.state as LeaseState,
    updatedAt: Number(row.updated_at),
  };
}

/**
 * The claim: a pool lease replaces a row only when that row is the same MAC's, released, or
 * expired by the writer's clock; a DECLINE always (it only takes an address out of use). Whatever
 * the servers' caches believed, the row lock and this condition let exactly one MAC hold an address.
 * It returns the addresses written; the caller reads the holders of the others in a new statement
 * (a row another server committed while this one waited on its lock is not in this one's snapshot).
 */
const KEEPS_LEASE = `(excluded.state = 'offered' AND leases.mac = excluded.mac AND leases.state = 'bound' AND leases.expires_at > excluded.updated_at)`;
const CLAIM = `
  WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[], $8::boolean[])
      AS t(address, mac, client_id, hostname, expires_at, state, updated_at, fixed)
  )
  INSERT INTO leases (address, mac, client_id, hostname, expires_at, state, updated_at)
    SELECT address, mac, client_id, hostname, expires_at, state, updated_at FROM input
  ON CONFLICT (address) DO UPDATE SET mac = excluded.mac, client_id = excluded.client_id, hostname = excluded.hostname,
    -- An OFFER of the address a client already holds keeps its lease: the offer row is only a hold.
    expires_at = CASE WHEN ${KEEPS_LEASE} THEN leases.expires_at ELSE excluded.expires_at END,
    state = CASE WHEN ${KEEPS_LEASE} THEN leases.state ELSE excluded.state END,
    updated_at = excluded.updated_at
  WHERE excluded.state = 'declined' OR leases.mac = excluded.mac OR leases.state = 'released'
     OR leases.expires_at <= excluded.updated_at
     OR (SELECT fixed FROM input WHERE input.address = excluded.address)
  RETURNING address`;

/**
 * DHCP leases in the shared PostgreSQL database: every server on it reads one table. `saveLeases`
 * claims each address conditionally (see `CLAIM`) and NOTIFYs the addresses in the same
 * transaction, so the other servers' pools learn of a lease when, and only when, it is committed.
 */
export function createPgLeaseStore(store: PgStore): LeaseStore & Required<Pick<LeaseStore, "claimLeases">> {
  return {
    async loadLeases() {
      // A `watch` opened just before must be listening before this snapshot, or a lease committed
      // between the two would be in neither.
      await store.listening();
      const { rows } = await store.pool.query<LeaseRow>(`SELECT * FROM leases`);
      return rows.map(fromRow);
    },

    async saveLeases(batch) {
      await this.claimLeases(batch);
    },

    async claimLeases(batch): Promise<LeaseSaveResult> {
      if (!batch.length) return { refused: [] };
      // One row per address per statement (ON CONFLICT cannot touch a row twice): the last change wins,
      // as it would have in order.
      const last = new Map<string, LeaseRecord>();
      for (const lease of batch) last.set(lease.address, lease);
      const rows = [...last.values()];
      const refused = await store.transaction(async (client) => {
        const result = await client.query<{ address: string }>(CLAIM, [
          rows.map((l) => l.address),
          rows.map((l) => l.mac),
          rows.map((l) => l.clientId ?? null),
          rows.map((l) => l.hostname ?? null),
          rows.map((l) => l.expiresAt),
          rows.map((l) => l.state),
          rows.map((l) => l.updatedAt),
          rows.map((l) => l.fixed === true),
        ]);
        const saved = new Set(result.rows.map((r) => r.address));
        // A MAC holds one address (as the pool says): a lease bound here releases what the same
        // MAC held elsewhere before it, e.g. an ACK another server sent it a moment earlier. Never a
        // newer one: a late commit of an old ACK must not free the address the client moved to.
        const bound = rows.filter((l) => l.state === "bound" && l.mac !== "" && saved.has(l.address));
        const released = bound.length
          ? await client.query<{ address: string }>(
              `UPDATE leases l SET state = 'released', updated_at = s.updated_at
                 FROM unnest($1::text[], $2::text[], $3::bigint[]) AS s(mac, address, updated_at)
                WHERE l.mac = s.mac AND l.address <> s.address AND l.state IN ('bound', 'offered')
                  AND l.updated_at <= s.updated_at
                RETURNING l.address`,
              [bound.map((l) => l.mac), bound.map((l) => l.address), bound.map((l) => l.updatedAt)],
            )
          : { rows: [] };
        // Changed, so the other servers hear of them; but not saved for this batch: an address
        // whose claim was refused may be among them (another MAC's offer, released here because
        // that MAC bound this address), and taken for saved it went out in an OFFER to a client
        // the row does not name, which the next server to claim it NAKed (bench/storm/README.md).
        const changed = new Set([...saved, ...released.rows.map((r) => r.address)]);
        await notifyIn(client, LEASES_CHANNEL, store.instance, [...changed]);
        const others = rows.filter((l) => !saved.has(l.address)).map((l) => l.address);
        if (!others.length) return [];
        const holders = await client.query<LeaseRow>(`SELECT * FROM leases WHERE address = ANY($1::text[])`, [others]);
        return holders.rows.map(fromRow);
      });
      return { refused };
    },

    watch(listener) {
      const fetch = (addresses: string[] | undefined) =>
        (addresses
          ? store.pool.query<LeaseRow>(`SELECT * FROM leases WHERE address = ANY($1::text[])`, [addresses])
          : store.pool.query<LeaseRow>(`SELECT * FROM leases`)
        )
          .then(({ rows }) => listener(rows.map(fromRow)))
          .catch(() => undefined);
      return store.listen(
        LEASES_CHANNEL,
        (payload) => {
          const [origin, addresses] = splitNotifyPayload(payload);
          if (origin !== store.instance && addresses.length) void fetch(addresses);
        },
        // Notifications lost while the listening connection was down: read the whole table again.
        () => void fetch(undefined),
      );
    },

    async findByMac(mac) {
      const { rows } = await store.pool.query<LeaseRow>(`SELECT * FROM leases WHERE mac = $1`, [mac]);
      return rows.map(fromRow);
    },
  };
}

/** Every lease, in address order, for `centra-pxe leases` and `db copy`. */
export async function listPgLeases(store: PgStore): Promise<LeaseRecord[]> {
  const { rows } = await store.pool.query<LeaseRow>(`SELECT * FROM leases ORDER BY inet(address)`);
  return rows.map(fromRow);
}
