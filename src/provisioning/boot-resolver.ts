import type { ImageCatalog } from "../boot/image-catalog.js";
import { bootChainOf } from "../boot/boot-chain.js";
import { imageBootFor } from "../boot/resolver.js";
import type {
  BootResolver,
  BootSpec,
  ImageBoot,
  MachineIdentity,
  ResolveContext,
  UnavailableBoot,
} from "../boot/spec.js";
import type { Config } from "../config/schema.js";
import { BOOT_PLAN } from "../lifecycle/lifecycle.js";
import type { NodeRecord } from "../store/store.js";
import { type BootEffects, type BootFacts, decideBoot, requesterOf, type TokenWithheld } from "./boot-decision.js";
import type { InventoryCore } from "./core.js";
import type { Lifecycle } from "./lifecycle-service.js";
import { archOf, selectProfile } from "./selectors.js";
import type { Sightings } from "./sightings.js";

export interface LifecycleResolverOptions {
  core: InventoryCore;
  lifecycle: Lifecycle;
  sightings: Sightings;
  /** The resolver for machines the inventory does not decide (the config resolver: menu, menu picks). */
  base: BootResolver;
  images: (config: Config) => ImageCatalog;
  /**
   * The address DHCP associates with a MAC: leased or reserved (server mode), requested in the
   * broadcast REQUEST (proxy mode). Undefined (or no answer) means nobody can be told apart.
   */
  addressOf?: (mac: string) => string | undefined;
}

/** A withheld token is told to the operator at most this often per node. */
const WITHHELD_NOTICE_INTERVAL_MS = 60_000;

/** What the install script's kernel line says instead of a token, so the installer (and whoever reads the script) learns why. */
const WITHHELD_ARGUMENT = "centra.token-withheld";

/**
 * `machine.ipxe` backed by the inventory: gather the facts, let `decideBoot` decide, apply its
 * effects (sighting, token, notice) in one place, render the plan as a BootSpec.
 */
export function createLifecycleResolver(options: LifecycleResolverOptions): BootResolver {
  const { core, lifecycle, sightings, base, images } = options;
  const withheldNoticeAt = new Map<string, number>();
  const missingBuildNoticeAt = new Map<string, number>();

  const resolver: BootResolver = {
    async resolve(machine: MachineIdentity, context: ResolveContext): Promise<BootSpec> {
      const probe = context.probe === true;
      const node = await core.store.nodes.findByMac(machine.mac);
      // The image is a fact only for the states that boot it.
      const bootsImage =
        node !== undefined &&
        node.profile !== undefined &&
        (BOOT_PLAN[node.state] === "image" || BOOT_PLAN[node.state] === "install");
      const image = bootsImage ? await imageFor(node, machine, context) : undefined;
      const selected =
        node === undefined || BOOT_PLAN[node.state] === "menu"
          ? selectProfile(context.config.selectors, {
              arch: archOf(machine.platform, machine.buildarch),
              uuid: machine.uuid,
              serial: machine.serial,
              labels: node?.labels ?? {},
            })
          : undefined;
      const facts: BootFacts = {
        node: node && { id: node.id, state: node.state, hasProfile: node.profile !== undefined },
        requester: requesterOf(options.addressOf?.(machine.mac), context.remote),
        probe,
        imageAvailable: image?.kind === "image",
        tokenToAnyAddress: context.config.provisioning.installTokenToAnyAddress,
        ...(selected ? { selectedProfile: selected.profile } : {}),
        ...(context.bootloader === true ? { bootloader: true } : {}),
      };
      const { plan, effects } = decideBoot(facts);

      const token = await apply(effects, machine, node, context);
      if (node && image?.kind === "unavailable" && image.missingBuild && !probe)
        await noticeMissingBuild(node, image.missingBuild, image.reason);
      if (effects.token && token === undefined) return resolver.resolve(machine, context); // the state moved meanwhile: decide again

      switch (plan.boot) {
        case "base":
          return base.resolve(machine, context);
        case "selected":
          return imageBootFor({
            config: context.config,
            images: images(context.config),
            baseUrl: context.baseUrl,
            profileName: plan.profile,
            buildarch: machine.buildarch,
          });
        case "localdisk": {
          const method = bootChainOf(context.config, machine.mac, node?.profile).localBoot;
          return { kind: "localdisk", ...(method !== undefined ? { method } : {}) };
        }
        case "none":
          return {
            kind: "none",
            reason:
              plan.why === "retired"
                ? `node ${node!.id} is retired`
                : `provisioning of node ${node!.id} failed; retry with: centra-pxe nodes provision ${node!.id}`,
          };
        case "image":
          return image!;
        case "install": {
          if (image!.kind !== "image") return image!;
          const apiUrl = context.config.provisioning.apiUrl ?? `${context.baseUrl}/api/v1`;
          const callback = plan.token ? `centra.token=${token!}` : `${WITHHELD_ARGUMENT}=${plan.withheld}`;
          return withArguments(image!, [`centra.api=${apiUrl}`, callback, `centra.node=${node!.id}`]);
        }
      }
    },
  };
  return resolver;

  /** The decision's effects, all here. Returns the token when one was asked for and the node still wants it. */
  async function apply(
    effects: BootEffects,
    machine: MachineIdentity,
    node: NodeRecord | undefined,
    context: ResolveContext,
  ): Promise<string | undefined> {
    if (effects.sighting) {
      await sightings.report({
        mac: machine.mac,
        via: "ipxe",
        ...(machine.uuid ? { uuid: machine.uuid } : {}),
        ...(machine.serial ? { serial: machine.serial } : {}),
      });
    }
    if (effects.withheld && node) await noticeWithheld(node, effects.withheld, context);
    if (!effects.token || !node) return undefined;
    const issued = await lifecycle.installToken(node.id);
    if (issued?.first)
      core.logger.info(
        { nodeId: node.id, mac: machine.mac, provisioningId: issued.node.provisioningId, remote: context.remote },
        "install boot: image with the attempt's callback token",
      );
    return issued?.token;
  }

  async function noticeWithheld(node: NodeRecord, why: TokenWithheld, context: ResolveContext): Promise<void> {
    const now = core.now().getTime();
    const last = withheldNoticeAt.get(node.id);
    if (last !== undefined && now - last < WITHHELD_NOTICE_INTERVAL_MS) return;
    withheldNoticeAt.set(node.id, now);
    const expected = options.addressOf?.(node.macs[0] ?? "") ?? null;
    const explanation =
      why === "not-the-machine-address"
        ? "the install script was asked for from an address DHCP did not give this machine; it got the image without the callback token"
        : "DHCP knows no address for this machine (dhcp.mode off, or no lease yet), so the callback token is not handed out over the network; set provisioning.installTokenToAnyAddress to allow it";
    core.logger.warn({ nodeId: node.id, remote: context.remote, expected, reason: why }, explanation);
    await core.record({
      nodeId: node.id,
      kind: "token-withheld",
      details: { reason: why, remote: context.remote ?? null, expected },
    });
  }

  /**
   * A node whose image has no build for its architecture: the script tells the machine, and the
   * node's events (its timeline) tell the operator, at most once a minute while it keeps asking.
   */
  async function noticeMissingBuild(
    node: NodeRecord,
    missing: NonNullable<UnavailableBoot["missingBuild"]>,
    reason: string,
  ): Promise<void> {
    const now = core.now().getTime();
    const last = missingBuildNoticeAt.get(node.id);
    if (last !== undefined && now - last < WITHHELD_NOTICE_INTERVAL_MS) return;
    missingBuildNoticeAt.set(node.id, now);
    core.logger.warn(
      { nodeId: node.id, image: missing.image, arch: missing.arch, buildarch: missing.buildarch },
      reason,
    );
    await core.record({
      nodeId: node.id,
      kind: "image-build-missing",
      details: { image: missing.image, arch: missing.arch ?? null, buildarch: missing.buildarch, reason },
    });
  }

  function imageFor(
    node: NodeRecord,
    machine: MachineIdentity,
    context: ResolveContext,
  ): Promise<ImageBoot | UnavailableBoot> {
    const { config } = context;
    const profileName = node.profile!;
    const profile = Object.hasOwn(config.profiles, profileName) ? config.profiles[profileName] : undefined;
    // A per-node version pin overrides the profile's own, for this decision only.
    const effective: Config =
      profile && node.imageVersion !== undefined
        ? { ...config, profiles: { ...config.profiles, [profileName]: { ...profile, version: node.imageVersion } } }
        : config;
    return imageBootFor({
      config: effective,
      images: images(config),
      baseUrl: context.baseUrl,
      profileName,
      buildarch: machine.buildarch,
      ...(node.hostname !== undefined ? { hostname: node.hostname } : {}),
    });
  }
}

/** Kernel arguments appended last, after the profile's (kernelArguments in boot/resolver.ts puts extras last too). */
function withArguments(image: ImageBoot, extra: readonly string[]): ImageBoot {
  return { ...image, cmdline: [image.cmdline, ...extra].join(" ").replace(/\s+/g, " ").trim() };
}
