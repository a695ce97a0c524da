/**
 * The lifecycle states of PRODUCT.md §5, at the bottom of the import graph: the store keeps them,
 * the lifecycle (src/provisioning/lifecycle.ts) moves nodes between them, the API and metrics name
 * them. Nothing here imports anything, so every layer may import it.
 */
export const NODE_STATES = ["discovered", "ready", "provisioning", "provisioned", "failed", "retired"] as const;
export type NodeState = (typeof NODE_STATES)[number];
