import { userInfo } from "node:os";
import { httpStatusOf } from "../api/http-status.js";
import { CentraError } from "../errors.js";
import { outcomeOf, summarizeChange } from "../identity/audit.js";
import type { AuditActor, Store } from "../store/store.js";

/**
 * The audit records of changes the CLI makes on the store file itself (tokens, images): no API
 * request sees them, so the command records them, with the local user as the actor.
 */

/** Who runs a CLI command that changes the store: the local user (and, under sudo, who asked for it). */
export function localActor(env: NodeJS.ProcessEnv = process.env): AuditActor {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    user = `uid ${process.getuid?.() ?? "?"}`;
  }
  const sudoUser = env.SUDO_USER;
  return { kind: "local", id: user, ...(sudoUser && sudoUser !== user ? { name: `sudo from ${sudoUser}` } : {}) };
}

/** Run a change the CLI makes on the store itself and record it, whatever its outcome, with the local user as actor. */
export async function auditedLocally<T>(
  store: Store,
  change: { action: string; target?: string; summary?: unknown },
  run: () => Promise<T>,
): Promise<T> {
  const record = (status: number) =>
    store.audit.append({
      at: new Date().toISOString(),
      actor: localActor(),
      action: change.action,
      ...(change.target !== undefined ? { target: change.target } : {}),
      summary: summarizeChange(change.summary),
      address: "local",
      outcome: outcomeOf(status),
      status,
    });
  let result: T;
  try {
    result = await run();
  } catch (error) {
    const own = (error as { status?: unknown }).status;
    const status = typeof own === "number" ? own : (httpStatusOf(error) ?? (error instanceof CentraError ? 400 : 500));
    // The failure the operator sees is the command's, not a failed audit write's.
    await record(status).catch(() => undefined);
    throw error;
  }
  await record(200);
  return result;
}
