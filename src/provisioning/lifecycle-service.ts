import { normalizeMac } from "../config/primitives.js";
import type { NodeRecord } from "../store/store.js";
import { type Actor, clearAttempt, type InventoryCore } from "./core.js";
import { CallbackRejectedError, type CallbackRefusal, TransitionRefusedError } from "./errors.js";
import { decideTransition, type LifecycleAction } from "../lifecycle/lifecycle.js";
import { callbackTokenFor, hashToken, randomId, randomSecret } from "./tokens.js";

/** The store's name for the key callback tokens are derived from. */
const CALLBACK_KEY = "callback-token-key";

/**
 * The lifecycle over the store (PRODUCT.md §5): the operator's transitions, the install token of an
 * attempt, the installer's callback and the deadline sweep. The decisions are lifecycle.ts's table.
 */
export class Lifecycle {
  private key: Promise<string> | undefined;

  constructor(private readonly core: InventoryCore) {}

  /** `provision` (ready/failed only) or `reprovision` (also provisioned, or a stuck attempt). */
  provision(ref: string, actor: Actor, options: { reprovision?: boolean } = {}): Promise<NodeRecord> {
    const { core } = this;
    return core.exclusive(async () => {
      const node = await core.getNode(ref);
      const action: LifecycleAction = options.reprovision ? "reprovision" : "provision";
      if (node.profile !== undefined && !Object.hasOwn(core.config.profiles, node.profile)) {
        throw new TransitionRefusedError(
          node.id,
          action,
          node.state,
          `its profile ${node.profile} is no longer in the config; set another one first`,
        );
      }
      // A new attempt: tokens of an earlier one must not complete this one.
      await core.store.callbackTokens.revokeForNode(node.id);
      return this.transition(node, action, actor, {}, (next) => {
        next.provisioningId = randomId("p");
        next.provisionDeadline = new Date(core.now().getTime() + core.config.provisioning.timeout).toISOString();
      });
    });
  }

  retire(ref: string, actor: Actor): Promise<NodeRecord> {
    return this.core.exclusive(async () => {
      const node = await this.core.getNode(ref);
      await this.core.store.callbackTokens.revokeForNode(node.id);
      return this.transition(node, "retire", actor, {}, clearAttempt);
    });
  }

  reactivate(ref: string, actor: Actor): Promise<NodeRecord> {
    return this.core.exclusive(async () =>
      this.transition(await this.core.getNode(ref), "reactivate", actor, {}, clearAttempt),
    );
  }

  /**
   * The callback token of a node's current attempt, for its install script. The same token on
   * every fetch of one attempt (an HMAC of the attempt's id under a key only the server holds; the
   * store keeps its hash only), so a refetch or a reboot mid-install is no reason to mint more. The
   * first install boot of an attempt restarts its clock once (a machine powered on an hour after
   * `provision` still gets the full time); later fetches move nothing.
   */
  installToken(nodeId: string): Promise<{ token: string; node: NodeRecord; first: boolean } | undefined> {
    const { core } = this;
    return core.exclusive(async () => {
      const node = await core.store.nodes.get(nodeId);
      if (node?.state !== "provisioning" || node.provisioningId === undefined) return undefined;
      const token = callbackTokenFor(await this.callbackKey(), node.provisioningId);
      const hash = hashToken(token);
      const known = await core.store.callbackTokens.find(hash);
      if (known) return { token, node, first: false };
      const now = core.now();
      const deadline = new Date(now.getTime() + core.config.provisioning.timeout).toISOString();
      await core.store.callbackTokens.issue({
        hash,
        nodeId: node.id,
        provisioningId: node.provisioningId,
        createdAt: now.toISOString(),
        expiresAt: deadline,
      });
      const next = { ...node, provisionDeadline: deadline };
      await core.store.nodes.replace(next);
      await core.record({
        nodeId: node.id,
        kind: "install-boot",
        details: { provisioningId: node.provisioningId, deadline },
      });
      return { token, node: next, first: true };
    });
  }

  /**
   * The installed system reports back with the token from its kernel command line. `mac`, when
   * given, must be one of the node's; a wrong MAC is refused WITHOUT spending the token, so a
   * stranger who guesses nothing cannot burn the machine's only way to report back.
   */
  callback(request: {
    token: string | undefined;
    mac?: string;
    outcome: "succeeded" | "failed";
    message?: string;
    remote?: string;
  }): Promise<NodeRecord> {
    const { core } = this;
    return core.exclusive(async () => {
      const { token } = request;
      const log = core.logger.child({ mac: request.mac, remote: request.remote });
      const refuse = async (reason: CallbackRefusal, message: string, nodeId?: string): Promise<never> => {
        log.warn({ reason, nodeId }, "installer callback refused");
        if (nodeId !== undefined)
          await core.record({
            nodeId,
            kind: "callback-rejected",
            details: { reason, mac: request.mac ?? null, remote: request.remote ?? null },
          });
        throw new CallbackRejectedError(reason, message);
      };
      if (token === undefined || token === "") {
        return refuse(
          "missing",
          "the callback needs its token: ?token=<centra.token> or Authorization: Bearer <centra.token>",
        );
      }
      const hash = hashToken(token);
      const found = await core.store.callbackTokens.find(hash);
      if (!found)
        return refuse(
          "unknown",
          "the callback token is not valid (a newer provisioning attempt replaces older tokens)",
        );
      const node = await core.store.nodes.get(found.nodeId);
      const mac = request.mac === undefined ? undefined : normalizeMac(request.mac);
      if (!node || (request.mac !== undefined && (mac === undefined || !node.macs.includes(mac)))) {
        return refuse(
          "other-node",
          `the callback token does not belong to ${request.mac ?? "this node"}`,
          found.nodeId,
        );
      }
      const result = await core.store.callbackTokens.consume(hash, core.timestamp());
      if (!result.ok) {
        const messages = {
          unknown: "the callback token is not valid (a newer provisioning attempt replaces older tokens)",
          used: "the callback token was already used",
          expired: "the callback token expired; reprovision the node",
        } as const;
        return refuse(result.reason, messages[result.reason], found.nodeId);
      }
      if (node.state !== "provisioning" || node.provisioningId !== result.token.provisioningId) {
        throw new CallbackRejectedError(
          "not-provisioning",
          `node ${node.id} is ${node.state}; this token belongs to an earlier provisioning attempt`,
        );
      }
      await core.store.callbackTokens.revokeForNode(node.id);
      const action: LifecycleAction = request.outcome === "failed" ? "callback-failed" : "callback-succeeded";
      return this.transition(
        node,
        action,
        `installer ${request.remote ?? ""}`.trim(),
        { provisioningId: node.provisioningId, ...(request.message ? { message: request.message } : {}) },
        clearAttempt,
      );
    });
  }

  /** Mark every node whose provisioning deadline passed `failed`. Returns the nodes it failed. */
  sweepTimeouts(): Promise<NodeRecord[]> {
    const { core } = this;
    return core.exclusive(async () => {
      const now = core.timestamp();
      const failed: NodeRecord[] = [];
      for (const node of await core.store.nodes.list({ state: "provisioning" })) {
        if (node.provisionDeadline === undefined || node.provisionDeadline > now) continue;
        await core.store.callbackTokens.revokeForNode(node.id);
        const deadline = node.provisionDeadline;
        failed.push(
          await this.transition(
            node,
            "timeout",
            "timeout",
            { deadline, timeoutMs: core.config.provisioning.timeout },
            clearAttempt,
          ),
        );
        core.logger.warn(
          { nodeId: node.id, macs: node.macs, deadline },
          "provisioning timed out without a callback; node failed",
        );
      }
      return failed;
    });
  }

  private callbackKey(): Promise<string> {
    this.key ??= this.core.store.secrets.getOrCreate(CALLBACK_KEY, randomSecret);
    return this.key;
  }

  private async transition(
    node: NodeRecord,
    action: LifecycleAction,
    actor: Actor,
    details: Record<string, unknown>,
    mutate?: (next: NodeRecord) => void,
  ): Promise<NodeRecord> {
    const { core } = this;
    const decision = decideTransition(node.state, action, { hasProfile: node.profile !== undefined });
    if (!decision.allowed) throw new TransitionRefusedError(node.id, action, node.state, decision.reason);
    const next: NodeRecord = { ...node, state: decision.to };
    if (decision.to !== node.state) next.stateChangedAt = core.timestamp();
    mutate?.(next);
    await core.store.nodes.replace(next);
    await core.record({
      nodeId: node.id,
      kind: "transition",
      fromState: node.state,
      toState: next.state,
      details: {
        action,
        by: actor,
        ...details,
        ...(next.provisioningId && next.provisioningId !== node.provisioningId
          ? { provisioningId: next.provisioningId }
          : {}),
      },
    });
    return next;
  }
}
