import { parseDuration } from "../config/primitives.js";
import { isRole, ROLES, type Role } from "../config/roles.js";
import { parseScope } from "./access.js";

/** What a new token may do, as `token create` and `POST /api/v1/tokens` take it. */
export interface TokenGrant {
  role: Role;
  scope?: Record<string, string>;
  expiresAt?: Date;
}

export interface GrantProblem {
  field: "role" | "scope" | "expires";
  message: string;
}

/**
 * A role (default `admin`, as every token was before roles), a label scope (`rack=a1`, a list of
 * such, or `{ rack: "a1" }`) and an expiry as a duration from `now` (`30d`): every problem at once.
 */
export function parseTokenGrant(
  input: { role?: unknown; scope?: unknown; expires?: unknown },
  now = Date.now(),
): { grant: TokenGrant } | { problems: GrantProblem[] } {
  const problems: GrantProblem[] = [];
  const role = input.role ?? "admin";
  if (typeof role !== "string" || !isRole(role))
    problems.push({ field: "role", message: `must be one of ${ROLES.join(", ")}, got ${JSON.stringify(role)}` });
  let scope: Record<string, string> | undefined;
  if (input.scope !== undefined) {
    const raw = input.scope;
    const pairs =
      typeof raw === "string"
        ? [raw]
        : Array.isArray(raw) && raw.every((p) => typeof p === "string")
          ? (raw as string[])
          : typeof raw === "object" && raw !== null && Object.values(raw).every((v) => typeof v === "string")
            ? Object.entries(raw as Record<string, string>).map(([key, value]) => `${key}=${value}`)
            : undefined;
    const parsed = pairs === undefined ? { problems: ["must be key=value pairs"] } : parseScope(pairs);
    if ("problems" in parsed)
      problems.push(...parsed.problems.map((message) => ({ field: "scope" as const, message })));
    else scope = parsed.scope;
    // What only an admin does (identity, images, tokens, the audit trail) is not about one node:
    // a scope could not narrow it, so an admin token is for the whole fleet.
    if (role === "admin")
      problems.push({
        field: "scope",
        message: "is for viewer and operator tokens; an admin token is for the whole fleet",
      });
  }
  let expiresAt: Date | undefined;
  if (input.expires !== undefined) {
    const ms = typeof input.expires === "string" ? parseDuration(input.expires) : undefined;
    if (ms === undefined || ms <= 0)
      problems.push({
        field: "expires",
        message: `not a duration such as 12h or 30d: ${JSON.stringify(input.expires)}`,
      });
    else expiresAt = new Date(now + ms);
  }
  if (problems.length) return { problems };
  return { grant: { role: role as Role, ...(scope ? { scope } : {}), ...(expiresAt ? { expiresAt } : {}) } };
}
