import {
  type BmcClient,
  type BmcClientOptions,
  type BmcEndpoint,
  BmcError,
  type BmcIdentity,
  type BootDevice,
  type BootDeviceResult,
  type BootOptions,
  createBmcClient,
  type PowerAction,
  type PowerState,
} from "../bmc/index.js";
import type { Config } from "../config/schema.js";
import type { NodeFilter, NodeRecord } from "../store/store.js";
import { type BmcInput, bmcEndpoint } from "./bmc-settings.js";
import type { Actor, InventoryCore } from "./core.js";
import { ConflictError } from "./errors.js";
import type { Lifecycle } from "./lifecycle-service.js";

/**
 * Power and boot control of the inventory's machines through their BMCs (issue 13), over the
 * `BmcClient` contract: every operation is an event with its outcome, every BMC call is bounded in
 * time (`bmc.timeout` × `bmc.attempts`), and bulk work runs a few BMCs at a time, each node on its
 * own, so a dead BMC costs its own node only.
 */

/** The power state as last read, for `nodes show` and the API. */
export interface PowerView {
  state: PowerState | "unknown";
  /** When it was read (ISO time). */
  checkedAt: string;
  /** The BMC failure code of the last read (`BMC_UNREACHABLE`, …), when it failed. */
  error?: string;
  message?: string;
}

/** One step of a provisioning by power, as its event records it. */
export interface PowerStep {
  step: "provision" | "boot-pxe" | "power-cycle" | "await-callback" | "boot-disk";
  outcome: "ok" | "failed";
  error?: string;
  message?: string;
  /** The boot device set (`pxe`, or `http` for a UEFI HTTP boot machine behind Redfish). */
  device?: BootDevice;
  /** What the BMC did not keep of a boot-device request. */
  mismatch?: string;
}

export interface PowerProvisionResult {
  node: NodeRecord;
  steps: PowerStep[];
}

/** A bulk provisioning: each node's outcome, never one node's failure for all. */
export interface BulkPowerResult {
  results: { node: string; ok: boolean; steps: PowerStep[]; error?: string; message?: string }[];
}

export interface PowerControlOptions {
  /** Build the client of an endpoint; tests may count or wrap. Default: `createBmcClient`. */
  clientFor?: (endpoint: BmcEndpoint, options: BmcClientOptions) => BmcClient;
}

/** `items` through `work`, at most `limit` at a time, each outcome kept. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * UEFI or legacy network boot from what DHCP or iPXE last saw of the machine (`bios`, `efi-x64`,
 * `pcbios`, `efi`); undefined when it was never seen, so the BMC's own mode is left alone.
 */
export function efiFromFirmware(firmware: string | undefined): boolean | undefined {
  if (firmware === undefined) return undefined;
  if (firmware.startsWith("efi")) return true;
  if (firmware === "bios" || firmware === "pcbios") return false;
  return undefined;
}

export class PowerControl {
  private readonly states = new Map<string, PowerView>();
  private poller: NodeJS.Timeout | undefined;
  private polling = false;
  private readonly followers = new Set<() => void>();

  constructor(
    private readonly core: InventoryCore,
    private readonly lifecycle: Lifecycle,
    private readonly options: PowerControlOptions = {},
  ) {}

  private get config(): Config {
    return this.core.config;
  }

  private clientOptions(): BmcClientOptions {
    return {
      attemptMs: this.config.bmc.timeout,
      attempts: this.config.bmc.attempts,
      ipmi: { ipmitool: this.config.bmc.ipmitool },
    };
  }

  /** The client of a node's BMC, or a conflict naming what to do. */
  private async clientOf(node: NodeRecord): Promise<BmcClient> {
    if (node.bmc === undefined)
      throw new ConflictError(
        "bmc",
        `node ${node.id} has no BMC; set one (centra-pxe nodes set ${node.id} --bmc-type … --bmc-address … --bmc-user … --bmc-password-file …)`,
      );
    const endpoint = await bmcEndpoint(this.core.store, node.id, node.bmc);
    return (this.options.clientFor ?? createBmcClient)(endpoint, this.clientOptions());
  }

  /** The power state as last polled or read, if any. */
  cached(nodeId: string): PowerView | undefined {
    return this.states.get(nodeId);
  }

  /** Read a node's power state now (and remember it). */
  async status(ref: string): Promise<PowerView> {
    const node = await this.core.getNode(ref);
    return this.read(node, await this.clientOf(node));
  }

  private async read(node: NodeRecord, client: BmcClient): Promise<PowerView> {
    const checkedAt = this.core.timestamp();
    try {
      const view: PowerView = { state: await client.powerStatus(), checkedAt };
      this.states.set(node.id, view);
      return view;
    } catch (error) {
      if (!(error instanceof BmcError)) throw error;
      this.states.set(node.id, { state: "unknown", checkedAt, error: error.code, message: error.message });
      throw error;
    }
  }

  /** Power a node on, off, cycle or reset it; an event either way. */
  async power(ref: string, action: PowerAction, actor: Actor): Promise<{ node: string; action: PowerAction }> {
    const node = await this.core.getNode(ref);
    const client = await this.clientOf(node);
    await this.step(node, "power", { action, by: actor }, () => client.power(action));
    this.states.delete(node.id);
    return { node: node.id, action };
  }

  /** Set a node's next boot device, read back; an event with what the BMC kept. */
  async bootDevice(ref: string, device: BootDevice, options: BootOptions, actor: Actor): Promise<BootDeviceResult> {
    const node = await this.core.getNode(ref);
    const client = await this.clientOf(node);
    return this.step(node, "boot-device", { device, ...options, by: actor }, () =>
      client.setBootDevice(device, options),
    );
  }

  /** The boot override a node's BMC holds now. */
  async getBootDevice(ref: string) {
    const node = await this.core.getNode(ref);
    return (await this.clientOf(node)).getBootDevice();
  }

  /** What a BMC not yet in the inventory says of its machine (UUID, serial, NIC MACs). */
  async discover(input: BmcInput): Promise<BmcIdentity> {
    if (input.password === undefined && input.passwordFile === undefined)
      throw new BmcError("credentials", "discovery through the BMC needs its password (bmc.password)");
    // The password in the clear for this one call; it is sealed once the node exists.
    const { password, ...stored } = input;
    const endpoint = await bmcEndpoint(this.core.store, "(discovery)", stored);
    if (password !== undefined) endpoint.password = password;
    return (this.options.clientFor ?? createBmcClient)(endpoint, this.clientOptions()).identity();
  }

  /**
   * Provision by power: a one-time network boot in the firmware's mode, the lifecycle's `provision`
   * (or `reprovision`), the power cycle; the boot flag is set RIGHT before the cycle (IPMI BMCs
   * forget one 60 s after it is set unless told not to, which the IPMI client also does). Then, in
   * the background, the wait for the installer's callback and the disk as boot device again.
   * Returns after the cycle; each step is a `power-provision` event with its outcome.
   */
  async provisionByPower(
    ref: string,
    actor: Actor,
    options: { reprovision?: boolean } = {},
  ): Promise<PowerProvisionResult> {
    const before = await this.core.getNode(ref);
    const client = await this.clientOf(before);
    const steps: PowerStep[] = [];
    const record = async (node: NodeRecord, step: PowerStep) => {
      steps.push(step);
      this.log(node, "power-provision", { ...step });
      await this.core.record({ nodeId: node.id, kind: "power-provision", details: { ...step, by: actor } });
    };
    const attempt = async <T>(node: NodeRecord, name: PowerStep["step"], body: () => Promise<T>): Promise<T> => {
      try {
        const value = await body();
        const { mismatch, requested } = (value ?? {}) as Partial<BootDeviceResult>;
        await record(node, {
          step: name,
          outcome: "ok",
          ...(requested ? { device: requested.device } : {}),
          ...(mismatch ? { mismatch } : {}),
        });
        return value;
      } catch (error) {
        const failure = error instanceof Error ? error : new Error(String(error));
        await record(node, {
          step: name,
          outcome: "failed",
          error: (failure as { code?: string }).code ?? "ERROR",
          message: failure.message,
        });
        throw error;
      }
    };
    // The boot flag first: a BMC that cannot be reached leaves the node as it was, not in an attempt
    // no machine is booting into. Then the transition (a local write), then at once the cycle.
    const efi = efiFromFirmware(before.firmware);
    const bootOptions = efi === undefined ? {} : { efi };
    await attempt(before, "boot-pxe", async () => {
      // A machine last seen UEFI HTTP booting (DHCP option 93 = 16/19) is sent to UefiHttp where its
      // Redfish BMC offers it; a BMC that does not is sent to PXE, which such firmware also does.
      if (client.protocol === "redfish" && before.firmware?.endsWith("-http")) {
        try {
          return await client.setBootDevice("http", bootOptions);
        } catch (error) {
          if (!(error instanceof BmcError && error.failure === "unsupported")) throw error;
        }
      }
      return client.setBootDevice("pxe", bootOptions);
    });
    const node = await attempt(before, "provision", () => this.lifecycle.provision(before.id, actor, options));
    await attempt(node, "power-cycle", () => client.power("cycle"));
    this.states.delete(node.id);
    void this.follow(node, client, efi, record).catch((error: unknown) =>
      this.core.logger.error({ err: error, node: node.id }, "following a provisioning by power failed"),
    );
    return { node, steps };
  }

  /** Wait for the attempt's end (callback, failure, deadline), then the disk as boot device on success. */
  private async follow(
    node: NodeRecord,
    client: BmcClient,
    efi: boolean | undefined,
    record: (node: NodeRecord, step: PowerStep) => Promise<void>,
  ): Promise<void> {
    const outcome = await new Promise<string>((resolve) => {
      let unsubscribe = () => {};
      const finish = (state: string) => {
        unsubscribe();
        clearTimeout(timer);
        this.followers.delete(stop);
        resolve(state);
      };
      const stop = () => finish("stopped");
      this.followers.add(stop);
      // The lifecycle's own deadline sweep marks the node failed; this is only the backstop.
      const timer = setTimeout(() => finish("timeout"), this.config.provisioning.timeout + 60_000);
      timer.unref();
      unsubscribe = this.core.onEvent((event) => {
        if (
          event.nodeId === node.id &&
          event.kind === "transition" &&
          event.fromState === "provisioning" &&
          event.toState
        )
          finish(event.toState);
      });
    });
    if (outcome === "stopped") return;
    if (outcome !== "provisioned") {
      await record(node, { step: "await-callback", outcome: "failed", message: `the attempt ended ${outcome}` });
      return;
    }
    await record(node, { step: "await-callback", outcome: "ok" });
    try {
      const result = await client.setBootDevice(
        "disk",
        efi === undefined ? { persistent: true } : { persistent: true, efi },
      );
      await record(node, {
        step: "boot-disk",
        outcome: "ok",
        ...(result.mismatch ? { mismatch: result.mismatch } : {}),
      });
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      await record(node, {
        step: "boot-disk",
        outcome: "failed",
        error: (failure as { code?: string }).code ?? "ERROR",
        message: failure.message,
      });
    }
  }

  /** Provision every node the filter selects by power, `bmc.concurrency` at a time. */
  async provisionMany(
    filter: NodeFilter,
    actor: Actor,
    options: { reprovision?: boolean } = {},
  ): Promise<BulkPowerResult> {
    const nodes = await this.core.store.nodes.list(filter);
    const results = await mapLimit(nodes, this.config.bmc.concurrency, async (node) => {
      try {
        const { steps } = await this.provisionByPower(node.id, actor, options);
        return { node: node.id, ok: true, steps };
      } catch (error) {
        const failure = error instanceof Error ? error : new Error(String(error));
        return {
          node: node.id,
          ok: false,
          steps: [],
          error: (failure as { code?: string }).code ?? "ERROR",
          message: failure.message,
        };
      }
    });
    return { results };
  }

  /** Run one BMC operation of a node as an event (`power` / `boot-device`) with its outcome. */
  private async step<T>(
    node: NodeRecord,
    kind: string,
    details: Record<string, unknown>,
    body: () => Promise<T>,
  ): Promise<T> {
    try {
      const value = await body();
      const mismatch = (value as { mismatch?: string } | undefined)?.mismatch;
      const outcome = { ...details, outcome: "ok", ...(mismatch ? { mismatch } : {}) };
      this.log(node, kind, outcome);
      await this.core.record({ nodeId: node.id, kind, details: outcome });
      return value;
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      const outcome = {
        ...details,
        outcome: "failed",
        error: (failure as { code?: string }).code ?? "ERROR",
        message: failure.message,
      };
      this.log(node, kind, outcome);
      await this.core.record({ nodeId: node.id, kind, details: outcome });
      throw error;
    }
  }

  /** One line per BMC operation: what, on which node and BMC address, and how it went (never a password). */
  private log(node: NodeRecord, kind: string, details: Record<string, unknown>): void {
    const line = {
      node: node.id,
      bmc: node.bmc ? `${node.bmc.type}:${node.bmc.address}` : undefined,
      kind,
      ...details,
    };
    if (details.outcome === "failed") this.core.logger.warn(line, `BMC ${kind} failed`);
    else this.core.logger.info(line, `BMC ${kind}`);
  }

  /** Poll the power of every node with a BMC every `bmc.pollInterval`, `bmc.concurrency` at a time. */
  startPolling(): void {
    this.stopPolling();
    const interval = this.config.bmc.pollInterval;
    if (interval <= 0) return;
    this.poller = setInterval(() => void this.pollOnce(), interval);
    this.poller.unref();
  }

  /** One round of the poller (a round still running is not started twice). */
  async pollOnce(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const nodes = (await this.core.store.nodes.list()).filter((n) => n.bmc !== undefined);
      await mapLimit(nodes, this.config.bmc.concurrency, async (node) => {
        try {
          await this.read(node, await this.clientOf(node));
        } catch (error) {
          if (!(error instanceof BmcError)) this.core.logger.warn({ err: error, node: node.id }, "power poll failed");
        }
      });
      // Forget nodes that are gone or lost their BMC.
      const live = new Set(nodes.map((n) => n.id));
      for (const id of this.states.keys()) if (!live.has(id)) this.states.delete(id);
    } finally {
      this.polling = false;
    }
  }

  stopPolling(): void {
    if (this.poller) clearInterval(this.poller);
    this.poller = undefined;
  }

  /** Stop the poller and every follower (the daemon stops). */
  stop(): void {
    this.stopPolling();
    for (const stop of [...this.followers]) stop();
  }
}
