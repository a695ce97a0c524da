import type { BootObserver } from "../contracts/boot-observation.js";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { Service, ServiceHealth } from "../contracts/service.js";
import { availableParallelism } from "node:os";
import type { FileCacheOptions } from "./file-source.js";
import { bootloaderDir, imagesDir } from "../files/state-dir.js";
import { TftpServer, type TftpLimits, type TftpSource, type TftpStats } from "./server.js";

export type { TftpStats, TftpLimits } from "./server.js";
export { TftpServer, DEFAULT_TFTP_LIMITS, refusalFor } from "./server.js";

export interface TftpServiceOptions {
  config: Config;
  logger: Logger;
  /** Reserved for the metrics registry; counters are read with `stats()` meanwhile. */
  metrics?: unknown;
  limits?: Partial<TftpLimits>;
  cache?: Partial<FileCacheOptions>;
  /** Transfer worker threads; default one per core up to 4, 0 runs every transfer in the main thread. */
  workers?: number;
  /** Told of every read that ended or was refused (the boot timeline). */
  observer?: BootObserver;
  /**
   * Files made per request, asked before the directories (the composition's per-machine grub
   * configs, src/boot/grub.ts): bytes for `filename` asked by `client` under `config`, or undefined.
   */
  generated?: (filename: string, client: string, config: Config) => Promise<Buffer | undefined>;
}

/**
 * Images over TFTP, at the same paths as over HTTP: Debian's signed netboot grub can fetch only by
 * TFTP (it has no http module), so a Secure Boot machine's kernel and initrd come this way.
 */
const IMAGES_PREFIX = /^\/?boot\/images\/(.+)$/;

export interface TftpService extends Service {
  /** Counters since start: transfers started/completed/failed, junk dropped, bytes sent, … */
  stats(): TftpStats;
  /** Where the request socket is bound (useful with port 0). */
  address(): { address: string; port: number };
}

/**
 * The TFTP part of the daemon (PRODUCT.md §3): read-only, serving `<stateDir>/ipxe` on
 * `tftp.bindAddress:tftp.port`.
 */
export function createTftpService(options: TftpServiceOptions): TftpService {
  const logger = options.logger.child({ part: "tftp" });
  let config = options.config;
  const server = new TftpServer({
    root: bootloaderDir(config.stateDir),
    bindAddress: config.tftp.bindAddress,
    port: config.tftp.port,
    logger,
    cache: options.cache,
    limits: { ...config.tftp.limits, ...options.limits },
    workers: options.workers ?? Math.min(availableParallelism(), 4),
    ...(options.observer ? { observer: options.observer } : {}),
    sources: async (filename, client): Promise<TftpSource | undefined> => {
      const bytes = await options.generated?.(filename, client, config);
      if (bytes) return { kind: "bytes", bytes };
      const image = IMAGES_PREFIX.exec(filename);
      return image ? { kind: "file", root: imagesDir(config.stateDir), name: image[1]! } : undefined;
    },
  });
  return {
    name: "tftp",
    async start() {
      await server.start();
      const { address, port } = server.address();
      logger.info({ address, port, root: bootloaderDir(config.stateDir) }, "tftp serving");
    },
    stop: () => server.stop(),
    check: (next: Config) => server.checkRebind(next.tftp.bindAddress, next.tftp.port),
    async reload(next: Config) {
      await server.reconfigure(bootloaderDir(next.stateDir), next.tftp.bindAddress, next.tftp.port, {
        ...next.tftp.limits,
        ...options.limits,
      });
      config = next;
    },
    health(): ServiceHealth {
      return server.listening ? { ok: true, detail: "serving" } : { ok: false, detail: "tftp is not listening" };
    },
    stats: () => server.stats(),
    address: () => server.address(),
  };
}
