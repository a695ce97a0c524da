import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifyReply,
  type FastifyRequest,
} from "fastify";
import { MACHINE_BOOTLOADER_SEGMENT } from "../boot/boot-chain.js";
import { createGrubConfigs } from "../boot/grub.js";
import { renderEntryScript, renderMachineScript, ENTRY_SCRIPT_PATH, MACHINE_SCRIPT_PATH } from "../boot/ipxe.js";
import { bootloaderDir, imageTree, imagesDir, isImageName as isPlainName, parseImageTree } from "../files/state-dir.js";
import type { BootResolver, BootSpec, MachineIdentity } from "../boot/spec.js";
import type { Config } from "../config/schema.js";
import { httpOrigin, normalizeMac, unmappedAddress } from "../config/primitives.js";
import type { TlsOptions } from "node:tls";
import { LogThrottle, type Logger } from "../log.js";
import type { ServiceHealth } from "../contracts/service.js";
import type { BootDecision, BootObserver, HttpFileKind } from "../contracts/boot-observation.js";
import { bytesSentBySendfile } from "./file-stream.js";
import { fastifyLimitOptions } from "./limits.js";
import { refusedRawPath } from "./raw-path.js";
import { sendFile, type RefusedPathLogger } from "./static-file.js";

/** At most one "refused request path" line (and one "outside the served root") per this long. */
const REFUSED_PATH_LOG_INTERVAL_MS = 10_000;

export interface HttpAppOptions {
  /** The config in force; a function so a reload is seen by the next request. */
  config: Config | (() => Config);
  logger: Logger;
  resolver: BootResolver | (() => BootResolver);
  /** Every part of the daemon by name, for `/health` (PRODUCT.md §3). */
  health: () => Record<string, ServiceHealth>;
  /** More routes, e.g. the REST API under /api/v1; registered after the boot routes. */
  extraPlugins?: FastifyPluginAsync[];
  /** Told of every boot-path request once its response ended, whole or cut short (the boot timeline). */
  observer?: BootObserver;
  /** Serve over TLS with these options (tls.ts `bootTlsOptions`); scripts then hand out https:// URLs. */
  tls?: TlsOptions;
}

/**
 * The HTTP boot app (PRODUCT.md §3): the seed's paths, the iPXE scripts and `/health`. Built
 * without listening, so tests drive it with `app.inject`; server.ts puts it on a socket.
 */
export async function createHttpApp(options: HttpAppOptions): Promise<FastifyInstance> {
  const currentConfig = typeof options.config === "function" ? options.config : () => options.config as Config;
  const currentResolver =
    typeof options.resolver === "function" ? options.resolver : () => options.resolver as BootResolver;
  const logger = options.logger;

  const limits = fastifyLimitOptions(currentConfig().http);
  // An HTTPS instance is typed over https.Server; every use here (routes, inject, listen, the
  // timeouts of limits.ts) is the same on both, so one type serves.
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // One line per boot decision is logged below; a line per request would drown it.
    logController: new LogController({ disableRequestLogging: true }),
    // HEAD is handled by each route itself: Fastify's automatic HEAD would open and stream files.
    exposeHeadRoutes: false,
    // SIGTERM must not wait for a 500 MB download to finish; iPXE retries a cut download.
    forceCloseConnections: true,
    // Timeouts, caps and the body limit of the config's `http:` section (issue 10).
    ...limits,
    // An HTTPS server takes the `http` options (head and request timeouts) with its TLS options.
    ...(options.tls ? { https: { ...options.tls, ...limits.http } } : {}),
  }) as unknown as FastifyInstance;

  // Request logging is off, which also silences Fastify's default error log: log failures here.
  // A 500 is what iPXE's retry loop expects from a server that has a bad moment.
  app.setErrorHandler(async (error, request, reply) => {
    const status =
      typeof (error as { statusCode?: unknown }).statusCode === "number"
        ? (error as { statusCode: number }).statusCode
        : 500;
    if (status >= 500) logger.error({ err: error, url: request.raw.url, remote: request.ip }, "request failed");
    return reply
      .code(status)
      .type("text/plain; charset=utf-8")
      .send(status >= 500 ? "internal error\n" : `${(error as Error).message}\n`);
  });

  // Refused paths are what a scanner or a fuzzer sends by the thousand: one line per interval per
  // kind, with `heldBack`, the count of such refusals not logged since the last line, not a line each
  // (the fuzz campaign got 13,173 of them). The fields are the refusal that got through.
  const refusalLog = new LogThrottle(REFUSED_PATH_LOG_INTERVAL_MS);
  const warnRefusedPath: RefusedPathLogger = (fields, message) => {
    const heldBack = refusalLog.admit(message, Date.now());
    if (heldBack !== undefined) logger.warn({ ...fields, heldBack }, message);
  };

  // http.tls.plainHttp: bootloaders: over plain HTTP, scripts and images are refused (a stranger
  // on the wire could read or change them there); bootloaders stay, for firmware without TLS.
  app.addHook("onRequest", async (request, reply) => {
    if (request.protocol === "https" || currentConfig().http.tls?.plainHttp !== "bootloaders") return;
    if (!onlyOverHttps(request.raw.url ?? "")) return;
    await reply
      .code(403)
      .type("text/plain; charset=utf-8")
      .send("boot scripts and images are served over HTTPS only here (http.tls.plainHttp: bootloaders)\n");
  });

  // Checked on the raw URL, before routing decodes it: `%2e%2e%2f` must never become `../`.
  app.addHook("onRequest", async (request, reply) => {
    const refusal = refusedRawPath(request.raw.url ?? "");
    if (refusal !== undefined) {
      warnRefusedPath({ url: request.raw.url, remote: request.ip, reason: refusal }, "refused request path");
      await reply.code(400).type("text/plain; charset=utf-8").send(`bad path: ${refusal}\n`);
    }
  });

  /** The per-machine script's decision, for the observer (set by its handler). */
  const decisions = new WeakMap<FastifyRequest, { mac: string; decision: BootDecision }>();
  const observer = options.observer;
  if (observer) {
    app.addHook("onRequest", async (request, reply) => {
      const kind = bootFileKind(request.routeOptions.url, request.params);
      if (kind === undefined) return;
      const started = performance.now();
      const socket = request.raw.socket;
      // sendfile's bytes never pass through Node's socket: counted beside it (file-stream.ts).
      const sentSoFar = () => socket.bytesWritten + bytesSentBySendfile(socket);
      const bytesBefore = sentSoFar();
      // 'close' comes for a response that ended and for one cut short (a hijacked file stream
      // included, which Fastify's own onResponse does not always see).
      reply.raw.once("close", () => {
        const complete = reply.raw.writableFinished;
        const announced = Number(reply.raw.getHeader("content-length"));
        const size = Number.isFinite(announced) ? announced : undefined;
        const body = request.method === "HEAD" ? 0 : size;
        const machine = decisions.get(request);
        try {
          observer({
            source: "http",
            at: Date.now(),
            client: unmappedAddress(request.ip),
            path: (request.raw.url ?? "").split("?")[0]!,
            kind,
            scheme: request.protocol === "https" ? "https" : "http",
            method: request.method,
            status: reply.raw.statusCode,
            // Cut short: what left the socket (headers included; close enough to say how far it got).
            bytes:
              complete && (body !== undefined || reply.raw.statusCode === 304)
                ? (body ?? 0)
                : Math.max(0, sentSoFar() - bytesBefore),
            ...(size !== undefined ? { size } : {}),
            ms: Math.round(performance.now() - started),
            complete,
            ...(machine ? { mac: machine.mac, decision: machine.decision } : {}),
          });
        } catch (error) {
          logger.error({ err: error }, "HTTP boot observer failed");
        }
      });
    });
  }

  // The scheme the script arrived by is the one its URLs use: a client that fetched it over TLS
  // trusts our certificate (our own iPXE build, or firmware with our CA enrolled); one that came
  // over plain HTTP may trust nothing of ours (Debian's iPXE, a PXE ROM), so it stays on http://.
  const baseUrlOf = (request: FastifyRequest): string =>
    baseUrlFor(request.headers.host, currentConfig(), request.protocol === "https" ? "https" : "http");
  const stateDir = () => currentConfig().stateDir;

  app.route({
    method: ["GET", "HEAD"],
    url: ENTRY_SCRIPT_PATH,
    handler: async (request, reply) => sendScript(reply, renderEntryScript(baseUrlOf(request))),
  });

  app.route({
    method: ["GET", "HEAD"],
    url: MACHINE_SCRIPT_PATH,
    handler: async (request, reply) => {
      const baseUrl = baseUrlOf(request);
      const parsed = machineFromQuery(request.query);
      let spec: BootSpec;
      if (typeof parsed === "string") {
        spec = { kind: "unavailable", reason: parsed };
      } else {
        spec = await currentResolver().resolve(parsed, {
          baseUrl,
          config: currentConfig(),
          remote: request.ip,
          probe: request.method === "HEAD",
        });
      }
      const machine = typeof parsed === "string" ? unidentified() : parsed;
      logger.info(
        {
          mac: machine.mac,
          platform: machine.platform,
          buildarch: machine.buildarch,
          uuid: machine.uuid || undefined,
          serial: machine.serial || undefined,
          remote: request.ip,
          boot: spec.kind,
          ...(spec.kind === "image"
            ? {
                profile: spec.profile,
                hostname: spec.hostname,
                image: `${spec.image}/${spec.version}`,
                arch: spec.arch,
              }
            : {}),
          ...(spec.kind === "unavailable" || spec.kind === "none" ? { reason: spec.reason } : {}),
          ...(spec.kind === "localdisk" && spec.method !== undefined ? { method: spec.method } : {}),
        },
        "boot script",
      );
      if (observer && typeof parsed !== "string")
        decisions.set(request, { mac: parsed.mac, decision: decisionOf(spec) });
      if (leavesByNotFound(spec)) return sendLocalBootNotFound(reply, machine.mac);
      return sendScript(reply, renderMachineScript(spec, machine, baseUrl));
    },
  });

  // grub's configs for the Secure Boot chain (boot/grub.ts), as over TFTP, for a grub whose prefix
  // is `(http,server)/boot/grub` (a signed grub built with the http module; Debian's has none). The
  // same decision and trust rules: the install token only to the machine's own address.
  const grubConfigs = createGrubConfigs({ resolver: currentResolver, logger });
  app.route<{ Params: { "*": string } }>({
    method: ["GET"],
    url: "/boot/grub/*",
    handler: async (request, reply) => {
      const text = await grubConfigs(`grub/${request.params["*"]}`, request.ip, currentConfig());
      if (!text) return reply.code(404).type("text/plain; charset=utf-8").send("not found\n");
      return sendScript(reply, text.toString());
    },
  });

  // Bootloaders over HTTP too (UEFI HTTP boot fetches ipxe.efi this way).
  app.route<{ Params: { file: string } }>({
    method: ["GET", "HEAD"],
    url: "/boot/ipxe/:file",
    handler: async (request, reply) =>
      sendFile(request, reply, bootloaderDir(stateDir()), request.params.file, logger, warnRefusedPath),
  });

  // The same bootloaders at a URL naming the machine (boot-chain.ts machineBootloaderUrl), which
  // DHCP gives UEFI HTTP boot firmware of a `localBoot: http-404` machine: once it is installed,
  // its firmware's download is answered 404, and the firmware goes on to its next boot option.
  // Decided without effects (a probe): the machine's boot script, later, is where those happen.
  // The resolver tells the 404 only to the machine's own address (the token's rule); anyone else
  // naming the MAC gets the bootloader, whatever the machine's state.
  app.route<{ Params: { mac: string; file: string } }>({
    method: ["GET", "HEAD"],
    url: `/boot/ipxe/${MACHINE_BOOTLOADER_SEGMENT}/:mac/:file`,
    handler: async (request, reply) => {
      const mac = normalizeMac(request.params.mac);
      if (mac === undefined) return reply.code(404).type("text/plain; charset=utf-8").send("not found\n");
      const machine: MachineIdentity = { mac, platform: "efi", buildarch: "", uuid: "", serial: "" };
      const spec = await currentResolver().resolve(machine, {
        baseUrl: baseUrlOf(request),
        config: currentConfig(),
        remote: request.ip,
        probe: true,
        bootloader: true,
      });
      if (leavesByNotFound(spec)) {
        // Only the machine (by the token's rule) is answered this, so the URL's MAC is its word. A
        // bootloader served is joined to a machine as any download is, by the address DHCP gave
        // it: a stranger naming another MAC cannot put its download on that machine's timeline.
        if (observer) decisions.set(request, { mac, decision: decisionOf(spec) });
        logger.info(
          { mac, remote: request.ip, file: request.params.file },
          "bootloader withheld: local boot by HTTP 404",
        );
        return sendLocalBootNotFound(reply, mac);
      }
      return sendFile(request, reply, bootloaderDir(stateDir()), request.params.file, logger, warnRefusedPath);
    },
  });

  app.route<{ Params: { image: string; version: string; file: string } }>({
    method: ["GET", "HEAD"],
    url: "/boot/images/:image/:version/:file",
    handler: async (request, reply) => {
      const { image, version, file } = request.params;
      return sendImageFile(request, reply, image, version, file);
    },
  });

  // The seed's paths: /boot/nixos/{bzImage,initrd} are image `nixos`'s current version, and the
  // seed's versioned layout /boot/nixos/<version>/… with `latest` for current.
  app.route<{ Params: { file: string } }>({
    method: ["GET", "HEAD"],
    url: "/boot/nixos/:file",
    handler: async (request, reply) =>
      sendImageFile(request, reply, "nixos", "current", seedFileName(request.params.file)),
  });
  app.route<{ Params: { version: string; file: string } }>({
    method: ["GET", "HEAD"],
    url: "/boot/nixos/:version/:file",
    handler: async (request, reply) => {
      const version = request.params.version === "latest" ? "current" : request.params.version;
      return sendImageFile(request, reply, "nixos", version, seedFileName(request.params.file));
    },
  });

  app.route({
    method: ["GET", "HEAD"],
    url: "/health",
    handler: async (_request, reply) => {
      const parts = options.health();
      const failing = Object.entries(parts)
        .filter(([, h]) => !h.ok)
        .map(([name]) => name);
      reply.header("cache-control", "no-store");
      return reply
        .code(failing.length ? 503 : 200)
        .send({ status: failing.length ? "unhealthy" : "ok", ...(failing.length ? { failing } : {}), parts });
    },
  });

  for (const plugin of options.extraPlugins ?? []) await app.register(plugin);

  async function sendImageFile(
    request: FastifyRequest,
    reply: FastifyReply,
    image: string,
    version: string,
    file: string,
  ): Promise<void> {
    // `current` is a symlink inside images/<name>/; resolving it here, per request, is what makes
    // `images use` take effect for the next download without a restart. `image` is the build's
    // tree: `debian`, or `debian@arm64` for its arm64 build (state-dir.ts imageTree).
    if (parseImageTree(image) === undefined || !(version === "current" || isPlainName(version))) {
      await reply.code(404).type("text/plain; charset=utf-8").send("not found\n");
      return;
    }
    return sendFile(request, reply, imagesDir(stateDir()), `${image}/${version}/${file}`, logger, warnRefusedPath);
  }

  return app;
}

/** What a boot route serves, by its route pattern and parameters; undefined for everything else. */
export function bootFileKind(route: string | undefined, params: unknown): HttpFileKind | undefined {
  const file = typeof params === "object" && params !== null ? (params as { file?: unknown }).file : undefined;
  switch (route) {
    case ENTRY_SCRIPT_PATH:
      return "entry-script";
    case MACHINE_SCRIPT_PATH:
      return "machine-script";
    case "/boot/ipxe/:file":
    case `/boot/ipxe/${MACHINE_BOOTLOADER_SEGMENT}/:mac/:file`:
      return "bootloader";
    case "/boot/images/:image/:version/:file":
    case "/boot/nixos/:file":
    case "/boot/nixos/:version/:file": {
      const name = typeof file === "string" ? seedFileName(file) : "";
      return name === "kernel" || name === "initrd" ? name : "image-file";
    }
    default:
      return undefined;
  }
}

/** The decision in brief; `install` when the kernel line carries the installer's callback (src/provisioning/boot-resolver.ts). */
function decisionOf(spec: BootSpec): BootDecision {
  switch (spec.kind) {
    case "image":
      return {
        boot: "image",
        profile: spec.profile,
        image: `${imageTree(spec.image, spec.arch)}/${spec.version}`,
        install: /(^|\s)centra\.api=/.test(spec.cmdline),
      };
    case "none":
    case "unavailable":
      return { boot: spec.kind, reason: spec.reason };
    default:
      return { boot: spec.kind };
  }
}

/** Scripts and images: what `http.tls.plainHttp: bootloaders` keeps off plain HTTP. */
export function onlyOverHttps(rawUrl: string): boolean {
  const path = rawUrl.split("?")[0]!;
  if (path.startsWith("/boot/images/") || path.startsWith("/boot/nixos/")) return true;
  return path.startsWith("/boot/ipxe/") && path.toLowerCase().endsWith(".ipxe");
}

/** The seed served `bzImage`; images store it as `kernel`. */
function seedFileName(file: string): string {
  return file === "bzImage" ? "kernel" : file;
}

/** `localBoot: http-404` for an installed machine: no script, no bootloader, a 404 (never a redirect). */
function leavesByNotFound(spec: BootSpec): boolean {
  return spec.kind === "localdisk" && spec.method === "http-404";
}

async function sendLocalBootNotFound(reply: FastifyReply, mac: string): Promise<FastifyReply> {
  // Not cached: the next boot after a reinstall is asked for must find the script again.
  return reply
    .code(404)
    .header("cache-control", "no-store")
    .type("text/plain; charset=utf-8")
    .send(`not found: ${mac} boots its local disk (localBoot: http-404)\n`);
}

async function sendScript(reply: FastifyReply, text: string): Promise<FastifyReply> {
  // Scripts are decisions made now (images switch, nodes change state): never cached.
  return reply.header("cache-control", "no-store").type("text/plain; charset=utf-8").send(text);
}

/**
 * The base of URLs in scripts. The Host header the client used reaches us by definition (iPXE
 * sends the host and port it was told), which also holds behind port forwards and on port 0 in
 * tests; anything that does not look like host[:port] falls back to the configured address.
 */
export function baseUrlFor(host: string | undefined, config: Config, scheme: "http" | "https" = "http"): string {
  if (host !== undefined && /^([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(:[0-9]{1,5})?$/.test(host))
    return `${scheme}://${host}`;
  const port = scheme === "https" ? (config.http.tls?.port ?? 443) : config.http.port;
  return port === 0 ? `${scheme}://${config.serverAddress}` : httpOrigin(config.serverAddress, port, scheme);
}

type QueryValue = string | string[] | undefined;

function first(value: QueryValue): string {
  return (Array.isArray(value) ? value[0] : value) ?? "";
}

/**
 * The identity iPXE put in the query (see MACHINE_QUERY in boot/ipxe.ts), checked field by field.
 * Returns the reason as a string when the machine cannot be identified at all.
 */
export function machineFromQuery(query: unknown): MachineIdentity | string {
  const q = (typeof query === "object" && query !== null ? query : {}) as Record<string, QueryValue>;
  const rawMac = first(q.mac);
  const mac = normalizeMac(rawMac);
  if (mac === undefined) {
    return rawMac === ""
      ? "the request carried no MAC address (is this iPXE older than netX support?)"
      : `the request carried an unreadable MAC address ${JSON.stringify(rawMac.slice(0, 40))}`;
  }
  // Only EFI changes the script (initrd=, exit). Anything else, including a missing value from
  // an old iPXE, is treated as BIOS, which is what such builds are.
  const platform = first(q.platform) === "efi" ? "efi" : "pcbios";
  const buildarch = /^[a-z0-9_]{1,16}$/.test(first(q.buildarch)) ? first(q.buildarch) : "";
  const uuid = /^[0-9A-Fa-f-]{1,36}$/.test(first(q.uuid)) ? first(q.uuid).toLowerCase() : "";
  // Serials are free text from SMBIOS: kept for the log and the lifecycle, never put in a script.
  const serial = first(q.serial)
    .replace(/[\x00-\x1f\x7f]/g, "")
    .slice(0, 128);
  const profile = first(q.profile);
  return {
    mac,
    platform,
    buildarch,
    uuid,
    serial,
    ...(/^[a-z0-9][a-z0-9-]{0,62}$/.test(profile) ? { requestedProfile: profile } : {}),
  };
}

function unidentified(): MachineIdentity {
  return { mac: "(unknown MAC)", platform: "pcbios", buildarch: "", uuid: "", serial: "" };
}
