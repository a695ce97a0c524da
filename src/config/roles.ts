/**
 * What a caller of the API may do (PRODUCT.md §5). Each role can do everything the one before it
 * can: a `viewer` reads; an `operator` also runs the lifecycle and the machine (provision,
 * reprovision, retire, power, console); an `admin` also changes nodes' identity, images and tokens.
 * Defined here, the lowest layer that names them: the config maps an identity provider's claims
 * onto them (`auth.oidc.roleMap`), the store keeps one per token.
 */
export const ROLES = ["viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

export function isRole(text: string): text is Role {
  return (ROLES as readonly string[]).includes(text);
}

/** Whether `held` may do what `needed` may. */
export function roleAllows(held: Role, needed: Role): boolean {
  return ROLES.indexOf(held) >= ROLES.indexOf(needed);
}
