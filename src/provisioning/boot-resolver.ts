import type { ImageCatalog } from "../boot/image-catalog.js";
import { imageBootFor } from "../boot/resolver.js";
import type { BootResolver, BootSpec, MachineIdentity, ResolveContext } from "../boot/spec.js";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { NodeRecord } from "../store/store.js";
import { BOOT_PLAN } from "./lifecycle.js";
import type { Provisioning } from "./provisioning.js";

export interface LifecycleResolverOptions {
  provisioning: Provisioning;
  /** The resolver for machines the inventory does not decide (the config resolver: menu, menu picks). */
  base: BootResolver;
  images: (config: Config) => ImageCatalog;
  logger: Logger;
}

/**
 * The boot decision backed by the inventory (PRODUCT.md §5): each PXE boot is also a sighting
 * (MAC, UUID, serial as last seen), and the node's state picks what it gets (BOOT_PLAN).
 */
export function createLifecycleResolver(options: LifecycleResolverOptions): BootResolver {
  const { provisioning, base, images, logger } = options;
  const resolver: BootResolver = {
    async resolve(machine: MachineIdentity, context: ResolveContext): Promise<BootSpec> {
      const node = await provisioning.observe({ mac: machine.mac, uuid: machine.uuid, serial: machine.serial, via: "ipxe" });
      const plan = BOOT_PLAN[node.state];
      switch (plan) {
        case "menu":
          return base.resolve(machine, context);
        case "localdisk":
          return { kind: "localdisk" };
        case "none":
          return {
            kind: "none",
            reason:
              node.state === "retired"
                ? `node ${node.id} is retired`
                : `provisioning of node ${node.id} failed; retry with: centra-pxe nodes provision ${node.id}`,
          };
        case "image":
          return imageFor(node, machine, context, []);
        case "install": {
          // No token for a boot that cannot happen (image missing): the attempt's clock keeps running.
          const probe = await imageFor(node, machine, context, []);
          if (probe.kind !== "image") return probe;
          const issued = await provisioning.issueInstallToken(node.id);
          // The state moved between the two steps (a retire, a callback): decide again.
          if (!issued) return resolver.resolve(machine, context);
          const apiUrl = context.config.provisioning.apiUrl ?? `${context.baseUrl}/api/v1`;
          logger.info({ nodeId: node.id, mac: machine.mac, provisioningId: issued.node.provisioningId }, "install boot: image with a fresh callback token");
          return imageFor(issued.node, machine, context, [`centra.api=${apiUrl}`, `centra.token=${issued.token}`, `centra.node=${node.id}`]);
        }
      }
    },
  };
  return resolver;

  function imageFor(node: NodeRecord, machine: MachineIdentity, context: ResolveContext, extraArguments: string[]): Promise<BootSpec> {
    if (node.profile === undefined) return base.resolve(machine, context);
    const { config } = context;
    const profile = Object.hasOwn(config.profiles, node.profile) ? config.profiles[node.profile] : undefined;
    // A per-node version pin overrides the profile's own, for this decision only.
    const effective: Config =
      profile && node.imageVersion !== undefined ? { ...config, profiles: { ...config.profiles, [node.profile]: { ...profile, version: node.imageVersion } } } : config;
    return imageBootFor({
      config: effective,
      images: images(config),
      baseUrl: context.baseUrl,
      profileName: node.profile,
      ...(node.hostname !== undefined ? { hostname: node.hostname } : {}),
      extraArguments,
    });
  }
}
