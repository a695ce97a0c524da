import { z, ZodArray, ZodDefault, ZodEffects, ZodObject, ZodOptional, ZodRecord, type ZodTypeAny } from "zod";
import { NAME_RULE, isImageName } from "../files/state-dir.js";
import { ROLES } from "./roles.js";
import {
  broadcastOf,
  FETCH_BAD_PORTS,
  formatDuration,
  formatIpv4,
  inSubnet,
  normalizeMac,
  parseDuration,
  parseIpv4,
  prefixLength,
} from "./primitives.js";

/**
 * The config file of PRODUCT.md §2 (the seed's NixOS module options, same names). Parsed once;
 * every default is written here, so a minimal file works and nothing downstream guesses.
 */

const ipv4 = z
  .string({ invalid_type_error: "must be an IPv4 address such as 10.0.100.10" })
  .refine((s) => parseIpv4(s) !== undefined, {
    message: "is not an IPv4 address (expected four numbers 0-255, like 10.0.100.10)",
  });

/** What a duration key accepts as written; `fileForm` finds duration keys by it. */
const durationText = z.union([z.string(), z.number()], {
  invalid_type_error: "must be a duration such as 10s, 5m or 1h",
});

const duration = durationText.transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message: `is not a duration: ${JSON.stringify(value)} (use 10s, 5m, 1h, 1h30m)`,
    });
    return z.NEVER;
  }
  return ms;
});

const port = z.number({ invalid_type_error: "must be a port number" }).int().min(0).max(65535);

const hostname = z
  .string()
  .regex(
    /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/,
    {
      message: "is not a valid hostname (letters, digits and '-', labels of at most 63 characters)",
    },
  );

const subnetFields = {
  subnet: ipv4,
  netmask: ipv4.refine((s) => prefixLength(parseIpv4(s) ?? 1) !== undefined, {
    message: "is not a contiguous netmask",
  }),
  broadcast: ipv4.optional(),
  range: z.object({ start: ipv4, end: ipv4 }).strict(),
  router: ipv4.optional(),
  dns: z.array(ipv4).default([]),
  domain: z.string().optional(),
  leaseTime: duration.default("1h"),
};

const relayedSubnet = z.object(subnetFields).strict();

/** `dhcp.budgets.*`: a global token bucket (rate per second, burst) and a per-MAC one. */
const budget = (defaults: { rate: number; burst: number; perMacBurst: number; perMacInterval: string }) =>
  z
    .object({
      rate: z.number({ invalid_type_error: "must be a number of events per second" }).positive().default(defaults.rate),
      burst: z.number({ invalid_type_error: "must be a whole number" }).int().min(1).default(defaults.burst),
      perMacBurst: z
        .number({ invalid_type_error: "must be a whole number" })
        .int()
        .min(1)
        .default(defaults.perMacBurst),
      perMacInterval: duration.default(defaults.perMacInterval),
    })
    .strict()
    .default({});

const dhcp = z
  .object({
    mode: z.enum(["server", "proxy", "off"]).default("server"),
    ...subnetFields,
    subnet: subnetFields.subnet.default("10.0.100.0"),
    netmask: subnetFields.netmask.default("255.255.255.0"),
    range: subnetFields.range.default({ start: "10.0.100.100", end: "10.0.100.200" }),
    port: port.default(67),
    /** More subnets reached through DHCP relays (giaddr); same keys as the top level. */
    subnets: z.array(relayedSubnet).default([]),
    /** The giaddr of each relay agent trusted to forward requests; relayed packets from others are dropped. */
    relays: z.array(ipv4).default([]),
    budgets: z
      .object({
        /** Packets from MACs we hold nothing for (no lease, offer or reservation). */
        newClients: budget({ rate: 100, burst: 500, perMacBurst: 10, perMacInterval: "1s" }),
        /** Sightings handed to the inventory (each may be a database write). */
        sightings: budget({ rate: 20, burst: 100, perMacBurst: 6, perMacInterval: "10s" }),
      })
      .strict()
      .default({}),
  })
  .strict();

/**
 * How a machine's firmware is answered (src/boot/boot-chain.ts), on a profile or on a node (a
 * node's own keys win over its profile's).
 */
const bootChainKeys = {
  /**
   * UEFI machines get Debian's signed chain (shim → grub → the signed kernel) instead of iPXE,
   * which no Secure Boot firmware with Microsoft's keys will run.
   */
  secureBoot: z.boolean().optional(),
  /**
   * The iPXE flavour for UEFI x86-64: `ipxe.efi`, `snponly.efi` or `http` (UEFI HTTP boot only). A
   * machine whose attempt stalls before its boot script arrives tries the next on its next attempt.
   */
  ipxe: z.enum(["ipxe.efi", "snponly.efi", "http"]).optional(),
  /**
   * How an installed machine leaves the network boot for its disk: `exit` (UEFI default) or
   * `sanboot` (BIOS default) from iPXE, or `http-404`: its boot script, and its UEFI HTTP boot
   * bootloader, are answered 404, so the firmware goes on to its next boot option by itself.
   */
  localBoot: z.enum(["exit", "sanboot", "http-404"]).optional(),
};

/**
 * What a profile boots on one CPU architecture when it differs from its default: an ARM64 machine
 * cannot run an x86 kernel ("Exec format error"), and its serial console is `ttyAMA0`, not `ttyS0`.
 */
const profileArch = z
  .object({
    image: z.string().min(1).optional(),
    version: z.string().optional(),
    /** Instead of `boot.console` on this architecture. */
    console: z.array(z.string()).optional(),
  })
  .strict();

/** iPXE's `${buildarch}` (grub's `$grub_cpu`): the architectures a profile can tell apart. */
export const PROFILE_ARCHES = ["x86_64", "i386", "arm64", "arm32"] as const;

const profile = z
  .object({
    image: z.string().min(1).default("nixos"),
    /** Pin an image version; default is the image's `current`. */
    version: z.string().optional(),
    cmdline: z.string().default(""),
    /** Per architecture (the machine's `${buildarch}`): another image, version or console. */
    arches: z.record(z.enum(PROFILE_ARCHES), profileArch).optional(),
    ...bootChainKeys,
  })
  .strict();

/** SMBIOS system UUID as iPXE's `${uuid}` prints it (RFC 4122 text form); stored lower case. */
const uuid = z
  .string({ invalid_type_error: "must be a UUID such as 4c4c4544-0042-3510-8052-b4c04f384d32" })
  .regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, {
    message: "is not a UUID (expected 8-4-4-4-12 hex digits, like 4c4c4544-0042-3510-8052-b4c04f384d32)",
  })
  .transform((s) => s.toLowerCase());

/** Labels as the API takes them (src/provisioning/node-input.ts): short names, short values. */
const labels = z.record(
  z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/, {
    message: "label names are letters, digits, '.', '_', '/', '-' (at most 63, starting with a letter or digit)",
  }),
  z.string({ invalid_type_error: "a label value must be a string" }).max(63, "a label value has at most 63 characters"),
);

/**
 * A node's BMC (issue 13, src/bmc). The password is never written in the config: `passwordFile`
 * names a file on the server (mode 0600, read at each use), so `config show` and the file itself
 * can be shared.
 */
const nodeBmc = z
  .object({
    type: z.enum(["ipmi", "redfish"]),
    /** Host name or IPv4 address of the BMC. */
    address: z.string().min(1).max(253),
    /** Default 623 (IPMI) or 443 (Redfish; 80 with scheme http). */
    port: port.optional(),
    username: z.string().min(1).max(64),
    passwordFile: z.string().min(1),
    /** Redfish: the sha256 of the BMC's (self-signed) certificate; it is accepted only when it matches. */
    fingerprint: z
      .string()
      .regex(/^([0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$/, {
        message: "is not a sha256 fingerprint (64 hex digits, ':' allowed)",
      })
      .optional(),
    /** Redfish: `http` only for lab BMCs. */
    scheme: z.enum(["https", "http"]).optional(),
    /** IPMI: RMCP+ cipher suite (ipmitool -C), for BMCs that need one named (e.g. 3). */
    cipherSuite: z.number().int().min(0).max(17).optional(),
  })
  .strict();

/**
 * A machine listed one by one. The key is its MAC (the one DHCP reserves `ipAddress` for); `macs`
 * lists its other NICs. The seed's `{ profile, hostname, ipAddress }` is the whole of it still;
 * a node without a profile gets its reservation and boots the menu (a dhcpd.conf `host` block).
 */
const node = z
  .object({
    profile: z.string().optional(),
    hostname: hostname.optional(),
    ipAddress: ipv4.optional(),
    macs: z.array(z.string({ invalid_type_error: "must be a MAC address" })).optional(),
    uuid: uuid.optional(),
    serial: z.string().min(1).max(128).optional(),
    labels: labels.optional(),
    bmc: nodeBmc.optional(),
    ...bootChainKeys,
  })
  .strict();

/**
 * What iPXE says a machine runs on, in the names DHCP uses for firmware (src/boot/firmware.ts
 * `Firmware`): `${platform}` pcbios → bios; efi with `${buildarch}` i386/x86_64/arm32/arm64.
 */
export const SELECTOR_ARCHES = ["bios", "efi-ia32", "efi-x64", "efi-arm32", "efi-arm64"] as const;

/**
 * A profile for machines not listed one by one (like Matchbox groups): every key of `match` must
 * hold. It picks the image a machine boots instead of the menu, nothing more: no reservation, no
 * hostname, no install token (a stranger could pick the same image from the menu).
 */
const selector = z
  .object({
    match: z
      .object({
        arch: z.enum(SELECTOR_ARCHES).optional(),
        uuid: uuid.optional(),
        serial: z.string().min(1).optional(),
        /** The labels of the machine's inventory record (a discovered machine an admin labelled). */
        labels: labels.optional(),
      })
      .strict(),
    profile: z.string(),
  })
  .strict();

/**
 * The HTTP server and its limits (issue 10): a stranger on the provisioning network may open
 * connections and never finish a request, never read an answer, or open hundreds at once. Boot
 * clients (iPXE, UEFI HTTP boot) send a request in one packet and read as fast as the link allows,
 * so every limit here can be tight without touching them.
 */
const positiveDuration = duration.refine((ms) => ms > 0, { message: 'must be longer than 0 (there is no "never")' });
const http = z
  .object({
    port: port.default(80),
    /** Default serverAddress (filled in by normalizeConfig); `0.0.0.0` listens on every address. */
    bindAddress: ipv4.optional(),
    /** A request's head must arrive whole within this (slowloris): answered 408 and closed. */
    headerTimeout: positiveDuration.default("10s"),
    /** The whole request, body included (an API call); at least headerTimeout. */
    requestTimeout: positiveDuration.default("30s"),
    /** A kept-alive connection idle between requests is closed after this. */
    keepAliveTimeout: positiveDuration.default("5s"),
    /** A connection that moves no byte either way for this long is closed (a reader that stopped reading). */
    sendTimeout: positiveDuration.default("60s"),
    /** Connections at once; more are closed as they arrive. */
    maxConnections: z.number().int().min(1).default(1024),
    /** Connections at once from one address; more are closed as they arrive; 0: no per-address limit. */
    maxConnectionsPerAddress: z.number().int().min(0).default(32),
    /** Requests on one kept-alive connection before it is closed; 0: no limit. */
    maxRequestsPerSocket: z.number().int().min(0).default(1000),
    /** Largest request body in bytes (the API's JSON); larger is refused with 413. */
    bodyLimit: z
      .number()
      .int()
      .min(1)
      .default(1024 * 1024),
    /**
     * HTTPS (issue 17): every path served on `tls.port` as well as on plain HTTP. `cert`/`key` are
     * PEM files (`centra-pxe tls init` makes a CA and a server certificate); `ca` is what clients
     * must trust (default: `cert` itself): our iPXE builds embed it, UEFI firmware gets it enrolled.
     */
    tls: z
      .object({
        cert: z.string().min(1),
        key: z.string().min(1),
        ca: z.string().min(1).optional(),
        port: port.default(443),
        /**
         * The UEFI HTTP boot clients of this site trust `ca` (enrolled in the firmware's TLS
         * certificate store): their DHCP answer names an https:// bootloader URL. Off: http://.
         */
        uefiHttpBoot: z.boolean().default(false),
        /**
         * What plain HTTP still serves once HTTPS is on: `all` (default), or `bootloaders`: only
         * `/boot/ipxe/<bootloader>` (firmware that cannot do TLS fetches our iPXE, which then goes
         * to https://), `/health` and the API; scripts and images only over HTTPS.
         */
        plainHttp: z.enum(["all", "bootloaders"]).default("all"),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((h, ctx) => {
    // Node refuses a head timeout longer than the request's (ERR_OUT_OF_RANGE at listen).
    if (h.headerTimeout > h.requestTimeout) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ["requestTimeout"],
        message: `must be at least headerTimeout (${h.headerTimeout} ms)`,
      });
    }
    if (h.tls && h.tls.port === h.port && h.port !== 0) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ["tls", "port"],
        message: `is http.port too (${h.port}): HTTPS needs a port of its own (443 by default)`,
      });
    }
  });

const SEED_PROFILES = {
  "control-plane": { image: "nixos", cmdline: "" },
  worker: { image: "nixos", cmdline: "" },
  "all-in-one": { image: "nixos", cmdline: "" },
};

const count = z.number({ invalid_type_error: "must be a number" }).int().min(1);
const rate = z.number({ invalid_type_error: "must be a number" }).positive();

/**
 * TFTP admission under load (src/tftp/admission.ts; issue 10). Each key left out keeps its default,
 * written once in src/tftp/transfer-server.ts (DEFAULT_TFTP_LIMITS) with the reasoning behind it.
 */
const tftpLimits = z
  .object({
    /** Transfers at once, in all and per client address. */
    maxTransfers: count.optional(),
    maxTransfersPerClient: count.optional(),
    /** Transfers not yet acknowledged by their client; the oldest is evicted past the total. */
    maxUnverifiedTransfers: count.optional(),
    maxUnverifiedPerClient: count.optional(),
    /** Requests on port 69 (token buckets): per client address, and for the whole server. */
    requestsPerSecondPerClient: rate.optional(),
    requestBurstPerClient: count.optional(),
    requestsPerSecond: rate.optional(),
    requestBurst: count.optional(),
  })
  .strict()
  .default({});

/** Where the password of a `postgres://` URL comes from when the URL has none: a file, else PGPASSWORD. */
const POSTGRES_URL = /^postgres(ql)?:\/\//;
const postgresStorage = z
  .object({
    /** `postgres://user@host:port/db` (`?host=/run/postgresql` for a unix socket). */
    url: z.string().regex(POSTGRES_URL, "must be a postgres://user@host:port/database URL"),
    /** A file holding the password alone (trailing newline ignored); read at start, never logged. */
    passwordFile: z.string().min(1).optional(),
    /** libpq's sslmode: `disable`, `require` (encrypt, trust any certificate), `verify-ca`, `verify-full`. */
    sslMode: z.enum(["disable", "prefer", "require", "verify-ca", "verify-full"]).optional(),
    /** PEM file of the CA that signed the server's certificate (verify-ca / verify-full). */
    caFile: z.string().min(1).optional(),
    /** Connections this server opens at most (its pool); LISTEN takes one more. */
    poolSize: z.number().int().min(1).max(1000).default(10),
    /**
     * The other servers on this database (`http://host:port`): a registered image version whose
     * files this server lacks is copied from the first that has it, verified by its sha256.
     */
    peers: z.array(z.string().regex(/^https?:\/\/[^/\s]+\/?$/, "must be http://host[:port]")).default([]),
  })
  .strict();
/** The store: the embedded SQLite file in stateDir, or a shared PostgreSQL database (PRODUCT.md §6). */
const storage = z
  .union([
    z.literal("sqlite"),
    z.string().regex(POSTGRES_URL, 'must be "sqlite" or a postgres://user@host:port/database URL'),
    postgresStorage,
  ])
  .transform((value): StorageConfig => {
    if (value === "sqlite") return { kind: "sqlite" };
    if (typeof value === "string") return { kind: "postgres", url: value, poolSize: 10, peers: [] };
    return { kind: "postgres", ...value };
  });
function storageFileForm(value: StorageConfig): z.input<typeof storage> {
  if (value.kind === "sqlite") return "sqlite";
  const { kind: _kind, ...written } = value;
  return written;
}
export type PostgresStorageConfig = z.output<typeof postgresStorage> & { kind: "postgres" };
export type StorageConfig = { kind: "sqlite" } | PostgresStorageConfig;
/**
 * An issuer's keys decide who is admin: fetched over plain HTTP, anyone on the path could swap
 * them. Loopback is allowed (an identity provider beside the server, and the tests' own).
 */
const keyUrl = z
  .string()
  .url({ message: "is not a URL (expected e.g. https://idp.example.com/realms/ops)" })
  .refine(
    (text) => {
      const url = new URL(text);
      return url.protocol === "https:" || ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
    },
    { message: "must be https:// (plain http only on loopback): the keys it leads to decide who is admin" },
  );

/** `auth.oidc`: bearer JWTs from an OpenID Connect provider (Keycloak, Dex, …), verified with its JWKS. */
const oidc = z
  .object({
    /** The `iss` every token must carry; `${issuer}/.well-known/openid-configuration` names the JWKS when jwksUrl is absent. */
    issuer: keyUrl,
    /** The `aud` a token must carry (one of them, when a list): the client id the provider issues tokens for. */
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    /** The issuer's JSON Web Key Set, when it has no discovery document. */
    jwksUrl: keyUrl.optional(),
    /** The claim holding the role(s), a dotted path for nested ones (Keycloak: `realm_access.roles`; Dex: `groups`). */
    roleClaim: z.string().min(1),
    /** The claim holding a label scope (`rack=a1`, a list of them, or an object); absent: the whole fleet. */
    scopeClaim: z.string().min(1).optional(),
    /** Claim value → role (`pxe-oncall: operator`); without it the claim's values must be role names. */
    roleMap: z
      .record(z.enum(ROLES, { errorMap: () => ({ message: `must be one of ${ROLES.join(", ")}` }) }))
      .optional(),
    /** How far `exp` and `nbf` may be off: the provider's clock and ours differ a little. */
    clockTolerance: duration.default("30s"),
  })
  .strict();

const configObject = z
  .object({
    interface: z.string().min(1).default("eth0"),
    serverAddress: ipv4.default("10.0.100.10"),
    stateDir: z.string().min(1).default("/var/lib/pxe-boot"),
    /** `sqlite` (a file in stateDir) or a `postgres://` URL, or `{ url, passwordFile, sslMode, caFile }`. */
    storage: storage.default("sqlite"),
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    dhcp: dhcp.default({}),
    /** `bindAddress`: default serverAddress (normalizeConfig), `0.0.0.0` for every address. */
    tftp: z
      .object({
        enabled: z.boolean().default(true),
        port: port.default(69),
        bindAddress: ipv4.optional(),
        limits: tftpLimits,
      })
      .strict()
      .default({}),
    http: http.default({}),
    boot: z
      .object({
        menuTimeout: duration.default("10s"),
        console: z.array(z.string()).default(["tty0", "ttyS0,115200n8"]),
        /**
         * A firmware boot attempt ends when its bootloader is fetched (its next DISCOVER begins the
         * next one); this bounds one whose fetch is never seen: a DISCOVER this long after its first
         * answer begins a new attempt. A new attempt after one that never fetched its boot script
         * falls back to the next iPXE flavour (src/boot/boot-chain.ts `decideFlavour`).
         */
        attemptWindow: duration.default("60s"),
      })
      .strict()
      .default({}),
    profiles: z
      .record(z.string().regex(/^[a-z0-9][a-z0-9-]*$/, "profile names are lower-case letters, digits and '-'"), profile)
      .default(SEED_PROFILES),
    nodes: z.record(z.string(), node).default({}),
    /** Profiles for machines not under `nodes`, first match wins (src/provisioning/selectors.ts). */
    selectors: z.array(selector).default([]),
    /** The provisioning lifecycle (PRODUCT.md §5). */
    provisioning: z
      .object({
        /** A node in `provisioning` that has not called back this long after its last install boot becomes `failed`. */
        timeout: duration.default("30m"),
        /** The API base the installer calls back to (`centra.api=`); default `http://<serverAddress>[:port]/api/v1`. */
        apiUrl: z.string().url({ message: "is not a URL (expected e.g. http://10.0.100.10/api/v1)" }).optional(),
        /** A machine only discovered (never registered) and not seen for this long is removed from the inventory. */
        discoveredTtl: duration.default("7d"),
        /**
         * Escape hatch: hand the callback token to a request for the install script from any address,
         * not only from the one DHCP leased/reserved (server mode) or saw requested (proxy mode) for that MAC.
         */
        installTokenToAnyAddress: z.boolean().default(false),
        /** New machines the inventory records per second (and in one burst); sightings beyond it are dropped and counted. */
        sightingsPerSecond: z.number().int().min(1).default(50),
        sightingBurst: z.number().int().min(1).default(200),
      })
      .strict()
      .default({}),
    /** The REST API (/api/v1): every route needs an admin token, the installer callback its own. */
    api: z
      .object({
        /** Concurrent `/api/v1/events/stream` subscribers; more get 503. */
        maxEventStreams: z.number().int().min(1).default(32),
      })
      .strict()
      .default({}),
    /** Who may call the API besides local tokens (PRODUCT.md §5): the company's identity provider. */
    auth: z
      .object({
        oidc: oidc.optional(),
      })
      .strict()
      .default({}),
    /** BMC power control (issue 13): timeouts, the power poller, bulk provisioning. */
    bmc: z
      .object({
        /** One BMC request (an ipmitool run, an HTTP request) gives up after this. */
        timeout: positiveDuration.default("10s"),
        /** Tries of a request that found nothing or timed out (never of a refused password). */
        attempts: z.number().int().min(1).max(5).default(2),
        /** How often each node's power state is read; 0 turns the poller off. */
        pollInterval: duration.default("60s"),
        /** BMCs asked at once, by the poller and by bulk provisioning each. */
        concurrency: z.number().int().min(1).max(256).default(8),
        /** ipmitool binary. */
        ipmitool: z.string().min(1).default("ipmitool"),
      })
      .strict()
      .default({}),
    metrics: z
      .object({
        /** `/metrics` needs an admin bearer token (it is open by default, as Prometheus scrapers expect). */
        requireToken: z.boolean().default(false),
      })
      .strict()
      .default({}),
    /** The boot timeline (src/timeline): caps on what it keeps in memory, and when a boot counts as stopped. */
    timeline: z
      .object({
        /** Machines of the inventory whose boots are kept (least recently seen dropped past it). */
        machines: z.number().int().min(1).default(20_000),
        /** Machines the inventory does not hold (a stranger's random MACs land here, and only here). */
        strangers: z.number().int().min(1).default(1_000),
        attemptsPerMachine: z.number().int().min(1).max(1_000).default(5),
        stepsPerAttempt: z.number().int().min(10).max(10_000).default(100),
        /** A boot that made no progress this long is judged where it stopped (TFTP aborted, no bootloader, …). */
        stallAfter: duration.default("2m"),
      })
      .strict()
      .default({}),
    /** Alerts on failed boots (src/alerts): delivered to webhooks and an Alertmanager, and as /metrics. */
    alerts: z
      .object({
        /** POSTed a JSON body signed with HMAC-SHA256 (`X-Centra-Signature`) when `secretFile` is set. */
        webhooks: z
          .array(
            z
              .object({
                url: z.string().url({ message: "is not a URL (expected e.g. https://hooks.example/centra)" }),
                /** A file whose content (trimmed) is the HMAC key; kept out of the config file. */
                secretFile: z.string().optional(),
              })
              .strict(),
          )
          .default([]),
        /** A Prometheus Alertmanager; alerts go to its `/api/v2/alerts`. */
        alertmanager: z
          .object({ url: z.string().url({ message: "is not a URL (expected e.g. http://127.0.0.1:9093)" }) })
          .strict()
          .optional(),
        /** A machine that starts this many boot attempts within `window` that got nowhere (not installed, booted nor sent to its disk) is looping. */
        bootLoop: z
          .object({ attempts: z.number().int().min(2).default(5), window: duration.default("10m") })
          .strict()
          .default({}),
        /** This many transfers cut short (TFTP aborted or failed after data, HTTP cut mid-body) by one machine within `window`. */
        abortedTransfers: z
          .object({ count: z.number().int().min(1).default(3), window: duration.default("10m") })
          .strict()
          .default({}),
        /** A part (dhcp, tftp, http, …) not serving this long. */
        partDown: z
          .object({ after: duration.default("30s") })
          .strict()
          .default({}),
        /** A firing alert is sent again this often (Alertmanager resolves alerts it stops hearing about). */
        repeatEvery: duration.default("1m"),
        /** Delivery attempts per alert and receiver before it is dropped (backoff doubles from 1 s). */
        retries: z.number().int().min(0).max(20).default(5),
      })
      .strict()
      .default({}),
  })
  .strict();

/**
 * What the file wrote itself, where a default would otherwise be mistaken for the operator's choice
 * (the loader reads it from the YAML; a caller holding only parsed data may leave it out).
 */
export interface WrittenKeys {
  /** The file declares `dhcp.subnet`; false: the lab's 10.0.100.0/24 is in force by default. */
  dhcpSubnet: boolean;
}

export const configSchema = configObject.superRefine((config, ctx) => checkCrossFields(config, ctx));

/** `configSchema`, told which keys the file wrote, so a problem a default causes says so. */
export function configSchemaFor(written: WrittenKeys) {
  return configObject.superRefine((config, ctx) => checkCrossFields(config, ctx, written));
}

/** Which of `WrittenKeys` a raw (YAML-parsed) config object holds. */
export function writtenKeys(raw: unknown): WrittenKeys {
  const dhcp = typeof raw === "object" && raw !== null ? (raw as Record<string, unknown>).dhcp : undefined;
  return { dhcpSubnet: typeof dhcp === "object" && dhcp !== null && "subnet" in dhcp };
}

export type ConfigInput = z.input<typeof configObject>;
type ParsedConfig = z.output<typeof configObject>;
export type DhcpSubnetConfig = z.output<typeof relayedSubnet>;
export type ProfileConfig = z.output<typeof profile>;
export type OidcConfig = z.output<typeof oidc>;

/** A node as the rest of the program sees it: keyed by its normalised MAC. */
export interface NodeConfig {
  mac: string;
  profile?: string;
  hostname?: string;
  ipAddress?: string;
  /** The node's other NICs, normalised (absent when it has one); `mac` is the one reserved for. */
  macs?: string[];
  uuid?: string;
  serial?: string;
  labels?: Record<string, string>;
  bmc?: NodeBmcConfig;
  /** The boot chain (`bootChainKeys`): over the profile's own. */
  secureBoot?: boolean;
  ipxe?: "ipxe.efi" | "snponly.efi" | "http";
  localBoot?: "exit" | "sanboot" | "http-404";
}

export type NodeBmcConfig = z.output<typeof nodeBmc>;

export type SelectorConfig = z.output<typeof selector>;

export type Config = Omit<ParsedConfig, "nodes" | "http" | "tftp"> & {
  nodes: Record<string, NodeConfig>;
  /** bindAddress always set: serverAddress unless the file names one. */
  http: ParsedConfig["http"] & { bindAddress: string };
  tftp: ParsedConfig["tftp"] & { bindAddress: string };
};

/** The checks no single field can make: addresses against subnets, uniqueness, references. */
function checkCrossFields(
  config: ParsedConfig,
  ctx: z.RefinementCtx,
  written: WrittenKeys = { dhcpSubnet: true },
): void {
  const issue = (path: (string | number)[], message: string) =>
    ctx.addIssue({ code: z.ZodIssueCode.custom, path, message });

  const subnets: { path: (string | number)[]; s: DhcpSubnetConfig }[] = [{ path: ["dhcp"], s: config.dhcp }];
  for (const [i, s] of config.dhcp.subnets.entries()) subnets.push({ path: ["dhcp", "subnets", i], s });

  for (const { path, s } of subnets) {
    const net = parseIpv4(s.subnet);
    const mask = parseIpv4(s.netmask);
    if (net === undefined || mask === undefined) continue;
    if ((net & mask) >>> 0 !== net)
      issue([...path, "subnet"], `${s.subnet} has host bits set for netmask ${s.netmask}`);
    const start = parseIpv4(s.range.start);
    const end = parseIpv4(s.range.end);
    if (start !== undefined && !inSubnet(start, net, mask))
      issue([...path, "range", "start"], `${s.range.start} is outside subnet ${s.subnet}/${s.netmask}`);
    if (end !== undefined && !inSubnet(end, net, mask))
      issue([...path, "range", "end"], `${s.range.end} is outside subnet ${s.subnet}/${s.netmask}`);
    if (start !== undefined && end !== undefined && start > end)
      issue([...path, "range"], `range is reversed: start ${s.range.start} is after end ${s.range.end}`);
    for (const key of ["router", "broadcast"] as const) {
      const value = s[key];
      const address = value === undefined ? undefined : parseIpv4(value);
      if (address !== undefined && !inSubnet(address, net, mask))
        issue([...path, key], `${value} is outside subnet ${s.subnet}/${s.netmask}`);
    }
    checkPool(path, s, net, mask, issue);
  }
  if (config.dhcp.mode === "server") checkServerInItsSubnet(config, written, issue);

  const seenRelays = new Set<number>();
  config.dhcp.relays.forEach((relay, i) => {
    const address = parseIpv4(relay);
    if (address === undefined) return;
    if (seenRelays.has(address)) issue(["dhcp", "relays", i], `${relay} is listed twice`);
    seenRelays.add(address);
    const home = subnets.some(({ s }) => {
      const n = parseIpv4(s.subnet);
      const m = parseIpv4(s.netmask);
      return n !== undefined && m !== undefined && inSubnet(address, n, m);
    });
    // The relay's giaddr picks the subnet a lease comes from (RFC 2131 §4.3.1); one in no subnet serves nothing.
    if (!home)
      issue(
        ["dhcp", "relays", i],
        `${relay} is in no DHCP subnet (${subnets.map(({ s }) => `${s.subnet}/${s.netmask}`).join(", ")}); add its subnet to dhcp.subnets`,
      );
  });

  const main = config.dhcp;
  const mainNet = parseIpv4(main.subnet);
  const mainMask = parseIpv4(main.netmask);

  const macs = new Map<string, string>();
  const uuids = new Map<string, string>();
  const addresses = new Map<number, string>();
  for (const [key, node] of Object.entries(config.nodes)) {
    const mac = normalizeMac(key);
    if (mac === undefined) {
      issue(
        ["nodes", key],
        `${JSON.stringify(key)} is not a MAC address (expected six hex pairs like 52:54:00:12:34:56)`,
      );
    } else if (macs.has(mac)) {
      issue(["nodes", key], `MAC ${mac} is listed twice (also as ${JSON.stringify(macs.get(mac))})`);
    } else {
      macs.set(mac, key);
    }
    (node.macs ?? []).forEach((extra, i) => {
      const other = normalizeMac(extra);
      if (other === undefined)
        issue(["nodes", key, "macs", i], `${JSON.stringify(extra)} is not a MAC address (six hex pairs)`);
      else if (macs.has(other))
        issue(
          ["nodes", key, "macs", i],
          `MAC ${other} is listed twice (also under ${JSON.stringify(macs.get(other))})`,
        );
      else macs.set(other, key);
    });
    if (node.uuid !== undefined) {
      const other = uuids.get(node.uuid);
      if (other !== undefined) issue(["nodes", key, "uuid"], `UUID ${node.uuid} is also the UUID of node ${other}`);
      else uuids.set(node.uuid, key);
    }
    if (node.profile !== undefined && !(node.profile in config.profiles)) {
      issue(
        ["nodes", key, "profile"],
        `unknown profile ${JSON.stringify(node.profile)} (defined: ${Object.keys(config.profiles).join(", ")})`,
      );
    }
    if (node.ipAddress !== undefined) {
      const address = parseIpv4(node.ipAddress);
      if (address === undefined) continue;
      const home = subnets.find(({ s }) => {
        const n = parseIpv4(s.subnet);
        const m = parseIpv4(s.netmask);
        return n !== undefined && m !== undefined && inSubnet(address, n, m);
      });
      if (config.dhcp.mode === "server" && mainNet !== undefined && mainMask !== undefined && !home) {
        issue(
          ["nodes", key, "ipAddress"],
          `${node.ipAddress} is outside every DHCP subnet (${subnets.map(({ s }) => `${s.subnet}/${s.netmask}`).join(", ")})`,
        );
      }
      for (const { s } of subnets) {
        const a = parseIpv4(s.range.start);
        const b = parseIpv4(s.range.end);
        if (a !== undefined && b !== undefined && address >= a && address <= b) {
          issue(
            ["nodes", key, "ipAddress"],
            `${node.ipAddress} is inside the dynamic pool ${s.range.start}-${s.range.end}; fixed addresses must lie outside it`,
          );
        }
      }
      const other = addresses.get(address);
      if (other !== undefined)
        issue(["nodes", key, "ipAddress"], `${node.ipAddress} is already the fixed address of ${other}`);
      else addresses.set(address, key);
    }
  }

  config.selectors.forEach((selector, i) => {
    if (!(selector.profile in config.profiles))
      issue(
        ["selectors", i, "profile"],
        `unknown profile ${JSON.stringify(selector.profile)} (defined: ${Object.keys(config.profiles).join(", ")})`,
      );
    // An empty match would send every unlisted machine to an installer: say so explicitly or not at all.
    if (Object.keys(selector.match).length === 0)
      issue(["selectors", i, "match"], "matches every machine; name at least one of arch, uuid, serial, labels");
  });

  for (const [name, p] of Object.entries(config.profiles)) {
    for (const [arch, a] of Object.entries(p.arches ?? {}))
      if (a.image !== undefined && !isImageName(a.image))
        issue(
          ["profiles", name, "arches", arch, "image"],
          `image name ${JSON.stringify(a.image)} may hold only ${NAME_RULE}`,
        );
    if (!isImageName(p.image))
      issue(["profiles", name, "image"], `image name ${JSON.stringify(p.image)} may hold only ${NAME_RULE}`);
  }
}

type IssueAt = (path: (string | number)[], message: string) => void;

/**
 * A subnet's pool and the addresses around it. A pool holding the network or broadcast address
 * hands a machine an address nobody can unicast to; one holding the router (or, in checkServer…,
 * this server) gives a machine the address of a box already on the wire: the ARP fight that follows
 * takes the network down (RFC 2131 §2.2: the server must not hand out an address in use).
 */
function checkPool(path: (string | number)[], s: DhcpSubnetConfig, net: number, mask: number, issue: IssueAt): void {
  const label = `${s.subnet}/${s.netmask}`;
  const network = (net & mask) >>> 0;
  const broadcast = broadcastOf(net, mask);
  const start = parseIpv4(s.range.start);
  const end = parseIpv4(s.range.end);
  // A pool reaching out of the subnet is reported already (range.start/end); its edges would only repeat it.
  const inside = start !== undefined && end !== undefined && inSubnet(start, net, mask) && inSubnet(end, net, mask);
  if (inside && start <= end) {
    if (start <= network && network <= end)
      issue(
        [...path, "range", "start"],
        `the pool ${s.range.start}-${s.range.end} includes ${formatIpv4(network)}, the network address of ${label}; start it at ${formatIpv4(network + 1)} or later`,
      );
    if (start <= broadcast && broadcast <= end)
      issue(
        [...path, "range", "end"],
        `the pool ${s.range.start}-${s.range.end} includes ${formatIpv4(broadcast)}, the broadcast address of ${label}; end it at ${formatIpv4(broadcast - 1)} or earlier`,
      );
    const router = s.router === undefined ? undefined : parseIpv4(s.router);
    if (router !== undefined && start <= router && router <= end)
      issue(
        [...path, "router"],
        `${s.router} is inside the pool ${s.range.start}-${s.range.end}: DHCP could hand the router's address to a machine; move the router or the pool`,
      );
  }
  const given = s.broadcast === undefined ? undefined : parseIpv4(s.broadcast);
  if (given !== undefined && inSubnet(given, net, mask) && given !== broadcast)
    issue(
      [...path, "broadcast"],
      `${s.broadcast} is not the broadcast address of ${label} (that is ${formatIpv4(broadcast)}); leave broadcast out to use it`,
    );
}

/**
 * Server mode hands out addresses of dhcp.subnet on the link it runs on, so the server must be in
 * that subnet and outside its pool. The dangerous case is a file with no dhcp.subnet: the default
 * is the lab's 10.0.100.0/24, and on an office LAN that is a rogue DHCP server (issue 18).
 */
function checkServerInItsSubnet(config: ParsedConfig, written: WrittenKeys, issue: IssueAt): void {
  const server = parseIpv4(config.serverAddress);
  const net = parseIpv4(config.dhcp.subnet);
  const mask = parseIpv4(config.dhcp.netmask);
  if (server === undefined || net === undefined || mask === undefined) return;
  const { range } = config.dhcp;
  if (!inSubnet(server, net, mask)) {
    issue(
      ["serverAddress"],
      written.dhcpSubnet
        ? `${config.serverAddress} is outside dhcp.subnet ${config.dhcp.subnet}/${config.dhcp.netmask}: in dhcp.mode server the server must be in the subnet it hands addresses out of; fix dhcp.subnet, or set dhcp.mode to proxy (beside another DHCP server) or off`
        : `${config.serverAddress} is outside the default dhcp.subnet ${config.dhcp.subnet}/${config.dhcp.netmask} (the lab's network; this file declares no dhcp.subnet): serving would hand out ${range.start}-${range.end} on another network, a rogue DHCP server; declare dhcp.subnet, netmask and range for this network, or set dhcp.mode to proxy or off`,
    );
  }
  const subnets = [
    { path: ["dhcp"], s: config.dhcp },
    ...config.dhcp.subnets.map((s, i) => ({ path: ["dhcp", "subnets", i], s })),
  ];
  for (const { s } of subnets) {
    const start = parseIpv4(s.range.start);
    const end = parseIpv4(s.range.end);
    if (start !== undefined && end !== undefined && start <= server && server <= end)
      issue(
        ["serverAddress"],
        `${config.serverAddress} is inside the pool ${s.range.start}-${s.range.end}: DHCP could hand this server's own address to a machine; move the pool or the server`,
      );
  }
}

/** A remark on a valid config: legitimate in some setup, but worth the operator's second look. */
export interface ConfigWarning {
  path: (string | number)[];
  message: string;
}

/** What `validate` (and `serve`, at start) warns about; the config is valid either way. */
export function configWarnings(config: Config): ConfigWarning[] {
  const warnings: ConfigWarning[] = [];
  // Port 0 asks the kernel for any free port: fine for a test on loopback, but DHCP answers and the
  // boot scripts name the configured port, so no machine could ever boot from it.
  if (config.tftp.enabled && config.tftp.port === 0)
    warnings.push({
      path: ["tftp", "port"],
      message:
        "0 lets the system pick a free port at each start; PXE firmware asks port 69, so no machine can load a bootloader from it (meant for tests)",
    });
  if (config.http.port === 0)
    warnings.push({
      path: ["http", "port"],
      message:
        "0 lets the system pick a free port at each start, but boot scripts and DHCP answers name port 0, so no machine can boot from it (meant for tests)",
    });
  if (FETCH_BAD_PORTS.has(config.http.port))
    warnings.push({
      path: ["http", "port"],
      message: `Node's fetch refuses port ${config.http.port} (a "bad port" of the Fetch standard): \`centra-pxe nodes\`, \`doctor\` and browsers cannot reach the server there, though iPXE and firmware can; choose another port`,
    });
  return warnings;
}

/** Turn the parsed file into the program's config: nodes keyed by normalised MAC. */
export function normalizeConfig(parsed: ParsedConfig): Config {
  const nodes: Record<string, NodeConfig> = {};
  for (const [key, n] of Object.entries(parsed.nodes)) {
    const mac = normalizeMac(key)!;
    // The seed's form stays exactly { mac, profile, hostname, ipAddress }: the richer keys only when written.
    nodes[mac] = n.macs === undefined ? { mac, ...n } : { mac, ...n, macs: n.macs.map((m) => normalizeMac(m)!) };
  }
  // HTTP and TFTP listen where the DHCP answers send clients, not on every address of the host
  // (a management network, a tenant-facing one); `0.0.0.0` in the file still means all of them.
  const http = { ...parsed.http, bindAddress: parsed.http.bindAddress ?? parsed.serverAddress };
  const tftp = { ...parsed.tftp, bindAddress: parsed.tftp.bindAddress ?? parsed.serverAddress };
  return { ...parsed, nodes, http, tftp };
}

/**
 * The effective config as a file would write it (`centra-pxe config show`): every default filled in,
 * durations back in words (`10s`, not 10000, which the file would read as seconds), nodes without the
 * `mac` the program adds. Parsing the result gives this same config back.
 */
export function fileForm(config: Config): ConfigInput {
  return toFileForm(configObject, config) as ConfigInput;
}

function toFileForm(schema: ZodTypeAny, value: unknown): unknown {
  for (;;) {
    if (schema instanceof ZodDefault || schema instanceof ZodOptional) schema = schema._def.innerType as ZodTypeAny;
    else if (schema instanceof ZodEffects) {
      if (schema._def.schema === durationText) return typeof value === "number" ? formatDuration(value) : value;
      if (schema === storage) return storageFileForm(value as StorageConfig);
      schema = schema._def.schema as ZodTypeAny;
    } else break;
  }
  if (value === undefined || value === null) return value;
  if (schema instanceof ZodObject) {
    const shape = schema.shape as Record<string, ZodTypeAny>;
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      if (shape[key] && v !== undefined) out[key] = toFileForm(shape[key], v);
    }
    return out;
  }
  if (schema instanceof ZodRecord) {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value as Record<string, unknown>))
      out[key] = toFileForm(schema.valueSchema as ZodTypeAny, v);
    return out;
  }
  if (schema instanceof ZodArray) return (value as unknown[]).map((v) => toFileForm(schema.element as ZodTypeAny, v));
  return value;
}
