import { createServer, type AddressInfo } from "node:net";
import type { FastifyInstance, FastifyPluginAsync } from "fastify";
import { createFileImageCatalog, type ImageCatalog } from "../boot/image-catalog.js";
import { createDefaultResolver } from "../boot/resolver.js";
import type { BootResolver } from "../boot/spec.js";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { Service, ServiceHealth } from "../contracts/service.js";
import { createHttpApp } from "./app.js";

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
}

export interface HttpService extends Service {
  /** Where the server listens (the real port when configured with port 0), once started. */
  address(): { address: string; port: number } | undefined;
}

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

  const service: HttpService = {
    name: "http",
    async start() {
      const started = await listen(config);
      app = started.app;
      listening = started.address;
      logger.info(listening, "HTTP boot service listening");
    },
    async stop() {
      const closing = app;
      app = undefined;
      listening = undefined;
      await closing?.close();
    },
    async check(next) {
      if (app && moves(next)) await probeListen(next.http.bindAddress, next.http.port);
    },
    async reload(next) {
      if (app && moves(next)) {
        const started = await listen(next);
        const old = app;
        app = started.app;
        listening = started.address;
        logger.info(listening, "HTTP boot service moved");
        await old.close();
      }
      config = next;
    },
    health() {
      return listening ? { ok: true } : { ok: false, detail: "not listening" };
    },
    address() {
      return listening;
    },
  };

  function moves(next: Config): boolean {
    return next.http.port !== config.http.port || next.http.bindAddress !== config.http.bindAddress;
  }

  async function listen(on: Config): Promise<{ app: FastifyInstance; address: { address: string; port: number } }> {
    const instance = await createHttpApp({
      config: () => config,
      logger,
      resolver: () => resolver,
      health: options.health ?? (() => ({ http: service.health() })),
      ...(options.extraPlugins ? { extraPlugins: options.extraPlugins } : {}),
    });
    try {
      await instance.listen({ host: on.http.bindAddress, port: on.http.port });
    } catch (error) {
      await instance.close();
      throw error;
    }
    const info = instance.server.address() as AddressInfo;
    return { app: instance, address: { address: info.address, port: info.port } };
  }

  return service;
}

/** Refuses (throws) when nothing could listen on `host:port` now: a reload checks a move this way. */
function probeListen(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", (error) => reject(new Error(`HTTP cannot move to ${host}:${port}: ${error.message}`, { cause: error })));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}
