// Signing in: the API token lives in sessionStorage, never in a URL or a cookie.
//
// Why sessionStorage and not an HttpOnly cookie: the API authenticates by the Authorization header
// only, so the browser never attaches the credential by itself and a forged cross-site request
// carries nothing (no CSRF to defend against, no login route or new door into the API). The cost is
// that script on the page could read the token; the page runs only its own bundled script under a
// strict Content-Security-Policy (script-src 'self', no inline, no eval), and Preact escapes every
// string it renders. sessionStorage is per tab and is cleared when the tab closes.
import { type ApiClient, ApiError } from "./api.js";

const TOKEN_KEY = "centra-pxe.token";

export function storedToken(): string | undefined {
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

export function storeToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

export type Role = "viewer" | "operator" | "admin";

export interface Identity {
  /** The token's name (or subject) as the server reports it. */
  name: string;
  role: Role;
}

/** What the dashboard may offer: a button a role cannot use is not shown at all. */
export type Capability = "lifecycle" | "images" | "inventory";

const CAPABILITIES: Record<Role, readonly Capability[]> = {
  viewer: [],
  operator: ["lifecycle"],
  admin: ["lifecycle", "images", "inventory"],
};

export function can(identity: Identity, capability: Capability): boolean {
  return CAPABILITIES[identity.role].includes(capability);
}

/**
 * Who the token is: `GET /api/v1/whoami` (issue 14's roles). A server from before roles has no such
 * route and answers 404 only after it accepted the token (the API authenticates every path, unknown
 * ones included), and every token it issues is an admin's.
 */
export async function whoami(client: ApiClient): Promise<Identity> {
  try {
    const answer = await client.get<Record<string, unknown>>("/whoami");
    return identityFrom(answer);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return { name: "admin token", role: "admin" };
    throw error;
  }
}

/**
 * The role endpoint's answer (`{ role, scope?, actor: { kind, id, name? } }`), read defensively: an
 * unknown role gets the least (viewer).
 */
export function identityFrom(answer: Record<string, unknown>): Identity {
  const actor = (typeof answer.actor === "object" && answer.actor !== null ? answer.actor : {}) as Record<
    string,
    unknown
  >;
  const role: Role = answer.role === "admin" || answer.role === "operator" ? answer.role : "viewer";
  const name = [actor.name, actor.id, answer.name].find((v) => typeof v === "string") as string | undefined;
  return { name: name ?? "signed in", role };
}
