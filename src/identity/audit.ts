import type { AuditOutcome } from "../store/store.js";

/**
 * What an audit record keeps of a change: the request's fields, never a secret. A field whose name
 * says it holds one is replaced by `[redacted]` wherever it is (a BMC password in a node body, a
 * token); long strings and big bodies are cut, so the trail cannot be used to store a payload.
 */
const SECRET_NAME = /pass(word|phrase)?|secret|token|credential|private|api[-_]?key|^key$/i;
const MAX_STRING = 200;
const MAX_KEYS = 50;
const MAX_DEPTH = 4;
const MAX_ITEMS = 20;

export function summarizeChange(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null || body === "") return {};
  if (typeof body !== "object" || Array.isArray(body)) return { body: redact(body, 1) };
  return redact(body, 0) as Record<string, unknown>;
}

function redact(value: unknown, depth: number): unknown {
  if (typeof value === "string") return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value;
  if (typeof value !== "object" || value === null) return value;
  if (depth >= MAX_DEPTH) return "[…]";
  if (Array.isArray(value)) {
    const items = value.slice(0, MAX_ITEMS).map((item) => redact(item, depth + 1));
    return value.length > MAX_ITEMS ? [...items, `… ${value.length - MAX_ITEMS} more`] : items;
  }
  const out: Record<string, unknown> = {};
  const entries = Object.entries(value);
  for (const [key, field] of entries.slice(0, MAX_KEYS))
    out[key] = SECRET_NAME.test(key) ? "[redacted]" : redact(field, depth + 1);
  if (entries.length > MAX_KEYS) out["…"] = `${entries.length - MAX_KEYS} more fields`;
  return out;
}

/** A status as an outcome: 2xx done; 401/403 (and a scope's 404) refused; anything else failed. */
export function outcomeOf(status: number, deniedByScope = false): AuditOutcome {
  if (deniedByScope || status === 401 || status === 403) return "denied";
  return status >= 200 && status < 300 ? "success" : "failed";
}
