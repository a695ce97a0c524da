import { readFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { createSecureContext, type Server as TlsServer, type TlsOptions } from "node:tls";
import type { FastifyInstance, FastifyPluginAsync } from "fastify";
import { createFileImageCatalog, type ImageCatalog } from "../boot/image-catalog.js";
import { createDefaultResolver } from "../boot/resolver.js";
import type { BootResolver } from "../boot/spec.js";
import type { Config } from "../config/schema.js";
import { LogThrottle, type Logger } from "../log.js";
import type { Service, ServiceHealth } from "../contracts/service.js";
import type { BootObserver } from "../contracts/boot-observation.js";
import { createHttpApp } from "./app.js";
import { guardConnections, type RefusedConnections } from "./connection-limits.js";
import { bufferPoolStats, requireSendfile } from "./file-stream.js";
import { applyLimits } from "./limits.js";
import { bootTlsOptions } from "./tls.js";

export interface HttpServiceOptions {
  config: Config;
  logger: Logger;
  /** Machine → boot spec; default: the static config's nodes and profiles over stateDir's images. */
  resolver?: BootResolver;
  /** Used by the default resolver; default: the files in stateDir/images. */
  images?: (config: Config) => ImageCatalog;
  /** Every part of the daemon for `/health`; default: this service alone. */
  health?: () => Record<string, ServiceHealth>;
  extraPlugins?: FastifyPluginAsync[];
  /** Told of every boot-path request once its response ended (the boot timeline). */
  observer?: BootObserver;
}

export interface HttpService extends Service {
  /** Where the server listens (the real port when configured with port 0), once started. */
  address(): { address: string; port: number } | undefined;
  /** Where the HTTPS listener listens (`http.tls`), once started; undefined without TLS. */
  tlsAddress(): { address: string; port: number } | undefined;
  /** What the limits refused and what downloads hold, for /metrics. */
  stats(): HttpStats;
}

export interface HttpStats {
  /** Connections closed as they arrived, since start, by the cap that refused them. */
  refusedConnections: RefusedConnections;
  /** Connections open now. */
  openConnections: number;
  /** Download chunks in use (owned, spare), idle, and the owned chunks' budget. */
  downloadBuffers: ReturnType<typeof bufferPoolStats>;
}

/** At most one log line per this long about refused connections: a flood must not flood the log. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

/**
 * The HTTP part of the daemon: the app of app.ts on config.http.bindAddress:config.http.port.
 * A reload that moves the port or address binds the new socket before closing the old one, so a
 * bad new port is refused while the old one keeps serving.
 */
export function createHttpService(options: HttpServiceOptions): HttpService {
  const logger = options.logger.child({ part: "http" });
  let config = options.config;
  const catalogFor = options.images ?? ((c: Config) => createFileImageCatalog(c.stateDir));
  const resolver = options.resolver ?? createDefaultResolver(catalogFor);
  let app: FastifyInstance | undefined;
  let listening: { address: string; port: number } | undefined;
  // The HTTPS listener (http.tls): the same app on another port, over TLS.
  let tlsApp: FastifyInstance | undefined;
  let tlsListening: { address: string; port: number } | undefined;
  let tlsOpenConnections: () => number = () => 0;
  const refused: RefusedConnections = { perAddress: 0, total: 0 };
  // A connection flood is a few lines per interval, each saying how many it stands for.
  const refusalLog = new LogThrottle(REFUSAL_LOG_INTERVAL_MS);
  let openConnections: () => number = () => 0;

  function noteRefusal(reason: keyof RefusedConnections, remote: string): void {
    refused[reason]++;
    const heldBack = refusalLog.admit(reason, Date.now());
    if (heldBack === undefined) return;
    logger.warn(
      {
        remote,
        reason,
        heldBack,
        maxConnections: config.http.maxConnections,
        maxConnectionsPerAddress: config.http.maxConnectionsPerAddress,
      },
      "refused an HTTP connection over the caps (heldBack: how many more since the last such line)",
    );
  }

  const service: HttpService = {
    name: "http",
    async start() {
      requireSendfile();
      const started = await listen(config);
      app = started.app;
      listening = started.address;
      logger.info(listening, "HTTP boot service listening");
      if (config.http.tls) {
        try {
          const secure = await listen(config, await readTlsOptions(config));
          tlsApp = secure.app;
          tlsListening = secure.address;
          tlsOpenConnections = secure.openConnections;
          logger.info(tlsListening, "HTTPS boot service listening");
        } catch (error) {
          await service.stop();
          throw error;
        }
      }
    },
    async stop() {
      const closing = [app, tlsApp];
      app = tlsApp = undefined;
      listening = tlsListening = undefined;
      await Promise.all(closing.map((a) => a?.close()));
    },
    async check(next) {
      if (app && moves(next)) await probeListen(next.http.bindAddress, next.http.port);
      // Certificates that do not load (a typo, a key of another certificate) are refused before
      // anything changes, like a port that cannot be bound.
      if (next.http.tls) {
        createSecureContext(await readTlsOptions(next));
        if (app && tlsMoves(next)) await probeListen(next.http.bindAddress, next.http.tls.port);
      }
    },
    async reload(next) {
      if (app && moves(next)) {
        const started = await listen(next);
        const old = app;
        app = started.app;
        listening = started.address;
        logger.info(listening, "HTTP boot service moved");
        await old.close();
      } else if (app) {
        applyLimits(app.server, next.http);
      }
      if (app) await reloadTls(next);
      config = next;
    },
    health() {
      if (!listening) return { ok: false, detail: "not listening" };
      if (config.http.tls && !tlsListening) return { ok: false, detail: "HTTPS not listening" };
      return { ok: true };
    },
    address() {
      return listening;
    },
    tlsAddress() {
      return tlsListening;
    },
    stats() {
      return {
        refusedConnections: { ...refused },
        openConnections: openConnections() + tlsOpenConnections(),
        downloadBuffers: bufferPoolStats(),
      };
    },
  };

  function moves(next: Config): boolean {
    return next.http.port !== config.http.port || next.http.bindAddress !== config.http.bindAddress;
  }

  function tlsMoves(next: Config): boolean {
    return (
      !tlsApp || next.http.tls?.port !== config.http.tls?.port || next.http.bindAddress !== config.http.bindAddress
    );
  }

  /**
   * TLS on reload: turned off, moved (a new listener, then the old one closed), or in place with
   * the certificate files read again, so a renewed certificate needs only a SIGHUP.
   */
  async function reloadTls(next: Config): Promise<void> {
    if (!next.http.tls) {
      const closing = tlsApp;
      tlsApp = undefined;
      tlsListening = undefined;
      tlsOpenConnections = () => 0;
      await closing?.close();
      return;
    }
    const tlsOptions = await readTlsOptions(next);
    if (tlsApp && !tlsMoves(next)) {
      (tlsApp.server as unknown as TlsServer).setSecureContext(tlsOptions);
      applyLimits(tlsApp.server, next.http);
      return;
    }
    const secure = await listen(next, tlsOptions);
    const old = tlsApp;
    tlsApp = secure.app;
    tlsListening = secure.address;
    tlsOpenConnections = secure.openConnections;
    logger.info(tlsListening, "HTTPS boot service listening");
    await old?.close();
  }

  async function listen(
    on: Config,
    tls?: TlsOptions,
  ): Promise<{ app: FastifyInstance; address: { address: string; port: number }; openConnections: () => number }> {
    const instance = await createHttpApp({
      config: () => config,
      logger,
      resolver: () => resolver,
      health: options.health ?? (() => ({ http: service.health() })),
      ...(options.extraPlugins ? { extraPlugins: options.extraPlugins } : {}),
      ...(options.observer ? { observer: options.observer } : {}),
      ...(tls ? { tls } : {}),
    });
    applyLimits(instance.server, on.http);
    const counter = guardConnections(instance.server, () => config.http, noteRefusal);
    const port = tls ? on.http.tls!.port : on.http.port;
    try {
      await instance.listen({ host: on.http.bindAddress, port });
    } catch (error) {
      await instance.close();
      throw explainListenError(error, on);
    }
    const count = () => counter.total;
    if (!tls) openConnections = count;
    const info = instance.server.address() as AddressInfo;
    return { app: instance, address: { address: info.address, port: info.port }, openConnections: count };
  }

  return service;
}

/** The listener's TLS options with the certificate and key of `http.tls` read from disk now. */
async function readTlsOptions(config: Config): Promise<TlsOptions> {
  const tls = config.http.tls!;
  const [cert, key] = await Promise.all(
    [tls.cert, tls.key].map((file, i) =>
      readFile(file).catch((error: unknown) => {
        throw new Error(`cannot read http.tls.${i === 0 ? "cert" : "key"} ${file}: ${(error as Error).message}`, {
          cause: error,
        });
      }),
    ),
  );
  return bootTlsOptions({ cert: cert!, key: key! }, config.http.headerTimeout);
}

/** Refuses (throws) when nothing could listen on `host:port` now: a reload checks a move this way. */
function probeListen(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", (error) =>
      reject(new Error(`HTTP cannot move to ${host}:${port}: ${error.message}`, { cause: error })),
    );
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

/**
 * HTTP listens on serverAddress by default: on a host that does not have that address the bind
 * fails, and the operator should learn why from the message, not from errno alone.
 */
function explainListenError(error: unknown, config: Config): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (code !== "EADDRNOTAVAIL") return error;
  const { bindAddress, port } = config.http;
  const hint =
    bindAddress === config.serverAddress
      ? "serverAddress is not an address of this host: set serverAddress to one (ip addr), or http.bindAddress (0.0.0.0 for every address)"
      : "http.bindAddress is not an address of this host (ip addr); 0.0.0.0 listens on every address";
  return new Error(`cannot listen for HTTP on ${bindAddress}:${port}: ${hint}`, { cause: error });
}
