import { posix } from "node:path";
import {
  type BootAttempt,
  type BootChain,
  bootChainOf,
  decideFlavour,
  FLAVOUR_BOOTLOADERS,
} from "../boot/boot-chain.js";
import { Firmware } from "../boot/firmware.js";
import type { Config } from "../config/schema.js";
import { requesterOf } from "./boot-decision.js";
import type { InventoryCore } from "./core.js";

/** Firmware that has a choice of iPXE flavours (UEFI x86-64, PXE and HTTP boot). */
const FLAVOURED_FIRMWARE: ReadonlySet<Firmware> = new Set([Firmware.EfiX64, Firmware.EfiX64Http]);

/** Machines remembered at most; DHCP's new-client budget bounds how fast strangers arrive. */
const MAX_REMEMBERED = 10_000;

/**
 * The boot chain DHCP answers a machine with, adapting its iPXE flavour to what worked
 * (boot-chain.ts `decideFlavour`): each firmware attempt is remembered per MAC, a boot script
 * (machine.ipxe or grub's config) marks it as having worked, its bootloader's download as past
 * DHCP, and a new attempt after one that stalled gets the next flavour, with the reason on the
 * machine's timeline (`boot-fallback`).
 * In memory: a restarted server starts every machine at its chain's own flavour again.
 */
export class BootAttempts {
  private readonly attempts = new Map<string, BootAttempt>();

  constructor(
    private readonly core: InventoryCore,
    /** DHCP's address of a MAC (provisioning's `addressOf`): whose downloads count for it. */
    private readonly addressOf?: (mac: string) => string | undefined,
  ) {}

  /**
   * DHCP's `bootChain`, for a `message` (`DISCOVER`, `REQUEST`, …) of `firmware` (iPXE's own DHCP
   * is no attempt of the firmware).
   */
  chainFor(mac: string, config: Config, firmware: Firmware, message: string): BootChain {
    const chain = bootChainOf(config, mac, this.core.profileFor(mac));
    if (chain.secureBoot || !FLAVOURED_FIRMWARE.has(firmware)) return chain;
    const decision = decideFlavour(
      this.attempts.get(mac),
      chain.flavour ?? "ipxe.efi",
      message,
      this.core.now().getTime(),
      config.boot.attemptWindow,
    );
    this.remember(mac, decision.attempt);
    if (decision.fallback) void this.recordFallback(mac, decision.fallback);
    return { ...chain, flavour: decision.flavour };
  }

  /**
   * `client` fetched `file` (by TFTP or HTTP), and the boot timeline joins that address to `mac`:
   * when it is an iPXE flavour's bootloader, the machine's attempt is past DHCP, so its next
   * DISCOVER is a new attempt. Another file (a Secure Boot chain's, a BIOS machine's) says nothing
   * of an iPXE flavour. Not from an address DHCP gave another machine: the timeline also joins an
   * address to whatever MAC a `machine.ipxe?mac=` from it named, and a stranger must not end (and
   * so fall back) another machine's attempt by downloading a bootloader itself.
   */
  bootloaderFetched(mac: string, file: string, client: string): void {
    const attempt = this.attempts.get(mac);
    if (!attempt || attempt.bootloaderFetched || !FLAVOUR_BOOTLOADERS.has(posix.basename(file))) return;
    if (requesterOf(this.addressOf?.(mac), client) === "other") return;
    this.attempts.set(mac, { ...attempt, bootloaderFetched: true });
  }

  /**
   * A boot script for `mac` was fetched from `client`: its current attempt's flavour works. Not
   * from an address DHCP gave another machine: anyone may ask for any MAC's `machine.ipxe`, and a
   * stranger's fetch must not mark a stalled attempt as one that worked (its fallback never came).
   */
  scriptFetched(mac: string, client: string | undefined): void {
    if (requesterOf(this.addressOf?.(mac), client) === "other") return;
    const attempt = this.attempts.get(mac);
    if (attempt && !attempt.scriptSeen) this.attempts.set(mac, { ...attempt, scriptSeen: true });
  }

  private remember(mac: string, attempt: BootAttempt): void {
    this.attempts.delete(mac); // re-inserted: Map order is least recently answered first
    this.attempts.set(mac, attempt);
    if (this.attempts.size > MAX_REMEMBERED) this.attempts.delete(this.attempts.keys().next().value!);
  }

  private async recordFallback(mac: string, fallback: { from: string; to: string; reason: string }): Promise<void> {
    try {
      const node = await this.core.store.nodes.findByMac(mac);
      this.core.logger.warn({ mac, nodeId: node?.id, ...fallback }, "boot attempt stalled: next iPXE flavour");
      if (node) await this.core.record({ nodeId: node.id, kind: "boot-fallback", details: { mac, ...fallback } });
    } catch (error) {
      this.core.logger.error({ err: error, mac }, "recording a boot fallback failed");
    }
  }
}
