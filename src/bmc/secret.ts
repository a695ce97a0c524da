import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { BmcError } from "./client.js";

/**
 * A BMC password at rest: AES-256-GCM under a key the server holds (the store's `secrets`), so a
 * copy of the inventory's rows alone does not give the BMC away. `v1.<iv>.<tag>.<ciphertext>`,
 * base64url; the node id is the associated data, so a sealed password moved to another node's
 * record does not open.
 */
const VERSION = "v1";

/** A new 256-bit key, base64 (what `secrets.getOrCreate` stores). */
export function newSealKey(): string {
  return randomBytes(32).toString("base64");
}

export function sealPassword(key: string, nodeId: string, password: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", keyBytes(key), iv);
  cipher.setAAD(Buffer.from(nodeId));
  const ciphertext = Buffer.concat([cipher.update(password, "utf8"), cipher.final()]);
  return [VERSION, iv, cipher.getAuthTag(), ciphertext]
    .map((p) => (typeof p === "string" ? p : p.toString("base64url")))
    .join(".");
}

export function openPassword(key: string, nodeId: string, sealed: string): string {
  const [version, iv, tag, ciphertext] = sealed.split(".");
  if (version !== VERSION || iv === undefined || tag === undefined || ciphertext === undefined)
    throw new BmcError("failed", "the stored BMC password is not in a form this server knows; set it again");
  try {
    const decipher = createDecipheriv("aes-256-gcm", keyBytes(key), Buffer.from(iv, "base64url"));
    decipher.setAAD(Buffer.from(nodeId));
    decipher.setAuthTag(Buffer.from(tag, "base64url"));
    return Buffer.concat([decipher.update(Buffer.from(ciphertext, "base64url")), decipher.final()]).toString("utf8");
  } catch (error) {
    throw new BmcError("failed", "the stored BMC password does not open with this server's key; set it again", {
      cause: error,
    });
  }
}

function keyBytes(key: string): Buffer {
  const bytes = Buffer.from(key, "base64");
  if (bytes.length !== 32) throw new BmcError("failed", "the BMC password key is not 256 bits");
  return bytes;
}
