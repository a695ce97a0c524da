// The dashboard's one door: the REST API under /api/v1 with the bearer token the operator signed in
// with. No other data source exists; the page itself embeds nothing.
import type { FleetSummary, NodePage } from "../src/api/node-page.js";
import type { NodeEvent, NodeRecord } from "../src/store/store.js";

export type { FleetSummary, NodeEvent, NodePage, NodeRecord };

export const API = "/api/v1";

/** An API refusal as the server worded it (`{ error, message }`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface ApiClient {
  get<T>(path: string): Promise<T>;
  send<T>(method: "POST" | "PUT" | "PATCH" | "DELETE", path: string, body?: unknown): Promise<T>;
}

/**
 * Requests with `Authorization: Bearer`. A 401 means the token is gone (revoked, or the server's
 * state was reset): `onUnauthorized` signs the operator out rather than showing a broken page.
 */
export function createClient(token: string, onUnauthorized: () => void): ApiClient {
  const request = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const response = await fetch(`${API}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        accept: "application/json",
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      cache: "no-store",
      credentials: "omit",
    });
    if (response.status === 401) onUnauthorized();
    const payload: unknown = await response.json().catch(() => undefined);
    if (!response.ok) {
      const error = (payload ?? {}) as { error?: string; message?: string };
      throw new ApiError(
        response.status,
        error.error ?? `HTTP_${response.status}`,
        error.message ?? response.statusText,
      );
    }
    return payload as T;
  };
  return {
    get: (path) => request("GET", path),
    send: (method, path, body) => request(method, path, body),
  };
}

const prefetched = new Map<string, Promise<unknown>>();

/**
 * Start GETs now, before the token is confirmed (`whoami`): the first page's reads then run beside
 * that check instead of after it. A prefetch is used once; a failed one is simply asked again.
 */
export function prefetch(client: ApiClient, paths: readonly string[]): void {
  for (const path of paths) {
    const request = client.get(path);
    request.catch(() => prefetched.delete(path));
    prefetched.set(path, request);
  }
}

/** `client.get(path)`, answered by a pending prefetch of the same path when there is one. */
export function getOnce<T>(client: ApiClient, path: string): Promise<T> {
  const early = prefetched.get(path);
  prefetched.delete(path);
  return (early as Promise<T> | undefined) ?? client.get<T>(path);
}

/** GET that answers `undefined` for a route this server does not have (a part not merged or not configured). */
export async function optional<T>(client: ApiClient, path: string): Promise<T | undefined> {
  try {
    return await client.get<T>(path);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 501)) return undefined;
    throw error;
  }
}

export type StreamStatus = "connecting" | "live" | "reconnecting";

/**
 * The live event stream (`/api/v1/events/stream`, server-sent events) read through fetch: EventSource
 * cannot send an Authorization header, and the token must never go in a URL. A dropped stream
 * reconnects with `Last-Event-ID`, so the server replays what was missed: no gap, no repeat.
 */
export function subscribeEvents(
  token: string,
  onEvent: (event: NodeEvent) => void,
  onStatus: (status: StreamStatus) => void,
): () => void {
  const abort = new AbortController();
  let lastSeq: number | undefined;
  let delayMs = 1000;

  const run = async () => {
    while (!abort.signal.aborted) {
      try {
        onStatus(lastSeq === undefined ? "connecting" : "reconnecting");
        const response = await fetch(`${API}/events/stream`, {
          headers: {
            authorization: `Bearer ${token}`,
            accept: "text/event-stream",
            ...(lastSeq === undefined ? {} : { "last-event-id": String(lastSeq) }),
          },
          signal: abort.signal,
          cache: "no-store",
          credentials: "omit",
        });
        if (response.status === 401 || response.status === 403) return;
        if (!response.ok || !response.body) throw new Error(`event stream: HTTP ${response.status}`);
        onStatus("live");
        delayMs = 1000;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end: number;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = parseServerSentEvent(block);
            if (event) {
              lastSeq = event.seq;
              onEvent(event);
            }
          }
        }
      } catch (error) {
        if (abort.signal.aborted) return;
        console.warn("event stream dropped", error);
      }
      onStatus("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      delayMs = Math.min(delayMs * 2, 30_000);
    }
  };
  void run();
  return () => abort.abort();
}

/** One `id:`/`data:` block of the stream; comments (`: keep-alive`) and partial blocks give nothing. */
export function parseServerSentEvent(block: string): NodeEvent | undefined {
  const data: string[] = [];
  for (const line of block.split("\n")) if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  if (data.length === 0) return undefined;
  try {
    const event = JSON.parse(data.join("\n")) as NodeEvent;
    return typeof event.seq === "number" ? event : undefined;
  } catch {
    return undefined;
  }
}
