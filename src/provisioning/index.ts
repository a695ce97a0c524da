import type { BootChain } from "../boot/boot-chain.js";
import type { Firmware } from "../boot/firmware.js";
import { createFileImageCatalog, type ImageCatalog } from "../boot/image-catalog.js";
import { createDefaultResolver } from "../boot/resolver.js";
import type { BootResolver } from "../boot/spec.js";
import type { Config } from "../config/schema.js";
import type { ImageArch } from "../files/state-dir.js";
import type { Logger } from "../log.js";
import type { Service } from "../contracts/service.js";
import type { NodeEvent, Store } from "../store/store.js";
import { BootAttempts } from "./boot-attempts.js";
import { createLifecycleResolver } from "./boot-resolver.js";
import { InventoryCore, type Reservation } from "./core.js";
import { Inventory } from "./inventory.js";
import { Lifecycle } from "./lifecycle-service.js";
import { PowerControl, type PowerControlOptions } from "./power.js";
import { type Sighting, Sightings, type SightingStats } from "./sightings.js";

export type { Actor, Reservation } from "./core.js";
export { Inventory } from "./inventory.js";
export { Lifecycle } from "./lifecycle-service.js";
export { type Sighting, Sightings, type SightingStats } from "./sightings.js";
export { createLifecycleResolver } from "./boot-resolver.js";
export { PowerControl, type PowerView, type PowerStep } from "./power.js";

export interface ProvisioningOptions {
  config: Config;
  store: Store;
  logger: Logger;
  now?: () => Date;
  /** The image catalog boot decisions use; default: the files in stateDir/images. */
  images?: (config: Config) => ImageCatalog;
  /** How often provisioning deadlines and discovered machines are checked; default a quarter of the timeout, at most 30 s. */
  sweepIntervalMs?: number;
  /**
   * The address DHCP associates with a MAC (the DHCP part's `addressOf`): the callback token goes
   * only to requests from it. Without it (dhcp off) no token is handed out over the network unless
   * `provisioning.installTokenToAnyAddress` says otherwise.
   */
  addressOf?: (mac: string) => string | undefined;
  /** How long sightings gather before their one commit; default 25 ms. */
  sightingBatchMs?: number;
  /** BMC clients (issue 13); default the real IPMI and Redfish clients. */
  power?: PowerControlOptions;
}

/**
 * The provisioning pieces the daemon composes (src/server/parts.ts): the inventory (admin-owned),
 * the lifecycle, the sightings, the boot resolver over them, and the part that loads the config's
 * nodes and runs the sweeps.
 */
export interface ProvisioningPart {
  inventory: Inventory;
  lifecycle: Lifecycle;
  sightings: Sightings;
  /** BMC power and boot control, and the power poller (issue 13). */
  power: PowerControl;
  /** Live events, for the API's SSE stream. Returns the unsubscribe function. */
  onEvent: InventoryCore["onEvent"];
  /**
   * The lifecycle as a daemon part: loads the config's nodes at start and on reload, marks overdue
   * provisioning attempts `failed` and expires stale discovered machines. Register it before HTTP and DHCP.
   */
  service: Service;
  /** The inventory-backed boot decision over the default resolver (HTTP `resolver`). */
  resolver: BootResolver;
  /** DHCP `observer`: a sighting, budgeted and batched. */
  dhcpObserver(seen: Sighting): void;
  /** DHCP `lookupNode`: reservations of nodes created through the API, live. */
  lookupNode(mac: string): Reservation | undefined;
  /**
   * DHCP `bootChain`: what the machine's node or profile asks its firmware to be answered with, the
   * iPXE flavour adapted to what worked for it (boot-attempts.ts).
   */
  bootChain(mac: string, config: Config, firmware: Firmware, message: string): BootChain;
  /**
   * `client`, which the boot timeline joins to `mac`, fetched `file` in full (TFTP, or HTTP for UEFI
   * HTTP boot): when it is an iPXE flavour's bootloader, the machine's attempt is past DHCP
   * (boot-attempts.ts).
   */
  bootloaderFetched(mac: string, file: string, client: string): void;
  /** Sightings recorded and dropped, for /metrics. */
  sightingStats(): SightingStats;
  /**
   * Events another server on the same database committed: to the live listeners (SSE), and the
   * reservations read again, as the change they describe may be a node's address or hostname.
   */
  remoteEvents(events: readonly NodeEvent[]): void;
}

/** Build the provisioning orchestrator and the pieces the HTTP and DHCP parts plug in. */
export function createProvisioning(options: ProvisioningOptions): ProvisioningPart {
  const core = new InventoryCore({
    store: options.store,
    config: options.config,
    logger: options.logger,
    ...(options.now ? { now: options.now } : {}),
  });
  const logger = core.logger;
  const inventory = new Inventory(core);
  const lifecycle = new Lifecycle(core);
  const power = new PowerControl(core, lifecycle, options.power ?? {});
  const sightings = new Sightings(
    core,
    options.sightingBatchMs !== undefined ? { batchMs: options.sightingBatchMs } : {},
  );
  const recordedCmdline = async (image: string, version: string, arch: ImageArch) =>
    (await options.store.images.get(image, version, arch))?.cmdline;
  const images = options.images ?? ((config: Config) => createFileImageCatalog(config.stateDir, recordedCmdline));
  const attempts = new BootAttempts(core, options.addressOf);
  const lifecycleResolver = createLifecycleResolver({
    core,
    lifecycle,
    sightings,
    base: createDefaultResolver(images),
    images,
    ...(options.addressOf ? { addressOf: options.addressOf } : {}),
  });
  // A script asked for (not a HEAD probe) ends the machine's boot attempt as one that worked.
  const resolver: BootResolver = {
    async resolve(machine, context) {
      if (context.probe !== true) attempts.scriptFetched(machine.mac, context.remote);
      const spec = await lifecycleResolver.resolve(machine, context);
      // `localBoot: http-404`: the 404 is this attempt's answer (its UEFI HTTP boot firmware asks
      // for nothing more), so it worked; a later one must not fall back to another iPXE flavour.
      if (spec.kind === "localdisk" && spec.method === "http-404") attempts.scriptFetched(machine.mac, context.remote);
      return spec;
    },
  };

  // One reread for a burst of remote events (a rack discovered at once), queued behind local changes.
  let reservationsQueued = false;
  const scheduleReservations = () => {
    if (reservationsQueued) return;
    reservationsQueued = true;
    void core
      .exclusive(async () => {
        reservationsQueued = false;
        await core.rebuildReservations();
      })
      .catch((error: unknown) =>
        logger.error({ err: error }, "could not reread reservations after another server's change"),
      );
  };

  let sweeper: NodeJS.Timeout | undefined;
  let sweeping = false;
  const sweepEvery = (config: Config) =>
    options.sweepIntervalMs ?? Math.max(1_000, Math.min(30_000, Math.floor(config.provisioning.timeout / 4)));
  const sweep = async () => {
    await lifecycle.sweepTimeouts();
    await sightings.expire();
  };
  const startSweeper = (config: Config) => {
    if (sweeper) clearInterval(sweeper);
    sweeper = setInterval(() => {
      if (sweeping) return;
      sweeping = true;
      sweep()
        .catch((error: unknown) => logger.error({ err: error }, "provisioning sweep failed"))
        .finally(() => {
          sweeping = false;
        });
    }, sweepEvery(config));
    sweeper.unref();
  };

  // Servers sharing a database sync the same config nodes: one at a time, or two starting together
  // would both create a node and one would fail on the other's MAC.
  const applyConfig = (config: Config) =>
    options.store.serialized
      ? options.store.serialized("config-sync", () => inventory.applyConfig(config))
      : inventory.applyConfig(config);
  const service: Service = {
    name: "provisioning",
    async start() {
      await applyConfig(options.config);
      startSweeper(options.config);
      power.startPolling();
    },
    async stop() {
      power.stop();
      if (sweeper) clearInterval(sweeper);
      sweeper = undefined;
      await sightings.flush();
    },
    async reload(config) {
      await applyConfig(config);
      startSweeper(config);
      power.startPolling();
    },
    health() {
      return sweeper ? { ok: true } : { ok: false, detail: "not started" };
    },
  };

  return {
    inventory,
    lifecycle,
    sightings,
    power,
    onEvent: (listener) => core.onEvent(listener),
    service,
    resolver,
    dhcpObserver(seen) {
      void sightings.report(seen);
    },
    lookupNode: (mac) => core.reservationFor(mac),
    bootChain: (mac, config, firmware, message) => attempts.chainFor(mac, config, firmware, message),
    bootloaderFetched: (mac, file, client) => attempts.bootloaderFetched(mac, file, client),
    sightingStats: () => sightings.stats(),
    remoteEvents(events) {
      core.publish(events);
      scheduleReservations();
    },
  };
}
