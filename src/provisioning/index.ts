import type { FastifyPluginAsync } from "fastify";
import { createFileImageCatalog, type ImageCatalog } from "../boot/image-catalog.js";
import { createConfigResolver } from "../boot/resolver.js";
import type { BootResolver } from "../boot/spec.js";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { Service } from "../contracts/service.js";
import type { Store } from "../store/store.js";
import { createApiPlugin } from "../api/plugin.js";
import { createLifecycleResolver } from "./boot-resolver.js";
import { Provisioning, type Reservation } from "./provisioning.js";

export { Provisioning } from "./provisioning.js";
export { createLifecycleResolver } from "./boot-resolver.js";

/** What DHCP reports of a network-boot client (structurally src/dhcp's SeenClient). */
export interface DhcpSighting {
  mac: string;
  firmware: string;
  arch?: number;
  uuid?: string;
  userClass?: string;
}

export interface ProvisioningOptions {
  config: Config;
  store: Store;
  logger: Logger;
  now?: () => Date;
  /** The image catalog boot decisions use; default: the files in stateDir/images. */
  images?: (config: Config) => ImageCatalog;
  /** How often provisioning deadlines are checked; default a quarter of the timeout, at most 30 s. */
  sweepIntervalMs?: number;
}

export interface ProvisioningPart {
  provisioning: Provisioning;
  /**
   * The lifecycle as a daemon part: loads the config's nodes at start and on reload, and marks
   * overdue provisioning attempts `failed`. Register it before HTTP and DHCP.
   */
  service: Service;
  /** The inventory-backed boot decision over the config resolver (HTTP `resolver`). */
  resolver: BootResolver;
  /** The same over another base resolver (for machines the inventory leaves to it: the menu). */
  wrapResolver(base: BootResolver): BootResolver;
  /** DHCP `observer`: an unknown MAC becomes `discovered`; a known one is marked seen. */
  dhcpObserver(seen: DhcpSighting): void;
  /** DHCP `lookupNode`: reservations of nodes created through the API, live. */
  lookupNode(mac: string): Reservation | undefined;
  /** The REST API under /api/v1 (HTTP `extraPlugins`). */
  apiPlugin: FastifyPluginAsync;
}

/** Build the provisioning orchestrator and the pieces the HTTP and DHCP parts plug in. */
export function createProvisioning(options: ProvisioningOptions): ProvisioningPart {
  const logger = options.logger.child({ part: "provisioning" });
  const provisioning = new Provisioning({ store: options.store, config: options.config, logger: options.logger, ...(options.now ? { now: options.now } : {}) });
  const recordedCmdline = async (image: string, version: string) => (await options.store.images.get(image, version))?.cmdline;
  const images = options.images ?? ((config: Config) => createFileImageCatalog(config.stateDir, recordedCmdline));
  const wrapResolver = (base: BootResolver) => createLifecycleResolver({ provisioning, base, images, logger });
  // The base sees the config of each request, so one catalog over the start-up stateDir is enough
  // for the menu; the lifecycle's own image boots use `images(config)` per request.
  const configResolver: BootResolver = {
    resolve: (machine, context) => createConfigResolver(images(context.config)).resolve(machine, context),
  };

  let sweeper: NodeJS.Timeout | undefined;
  let sweeping = false;
  const sweepEvery = (config: Config) => options.sweepIntervalMs ?? Math.max(1_000, Math.min(30_000, Math.floor(config.provisioning.timeout / 4)));
  const startSweeper = (config: Config) => {
    if (sweeper) clearInterval(sweeper);
    sweeper = setInterval(() => {
      if (sweeping) return;
      sweeping = true;
      provisioning
        .sweepTimeouts()
        .catch((error: unknown) => logger.error({ err: error }, "provisioning timeout sweep failed"))
        .finally(() => {
          sweeping = false;
        });
    }, sweepEvery(config));
    sweeper.unref();
  };

  const service: Service = {
    name: "provisioning",
    async start() {
      await provisioning.applyConfig(options.config);
      startSweeper(options.config);
    },
    async stop() {
      if (sweeper) clearInterval(sweeper);
      sweeper = undefined;
    },
    async reload(config) {
      await provisioning.applyConfig(config);
      startSweeper(config);
    },
    health() {
      return sweeper ? { ok: true } : { ok: false, detail: "not started" };
    },
  };

  return {
    provisioning,
    service,
    resolver: wrapResolver(configResolver),
    wrapResolver,
    dhcpObserver(seen) {
      provisioning
        .observe({ mac: seen.mac, firmware: seen.firmware, ...(seen.uuid !== undefined ? { uuid: seen.uuid } : {}), via: "dhcp" })
        .catch((error: unknown) => logger.error({ err: error, mac: seen.mac }, "could not record a DHCP sighting"));
    },
    lookupNode: (mac) => provisioning.reservationFor(mac),
    apiPlugin: createApiPlugin({ provisioning, store: options.store, logger: options.logger }),
  };
}
