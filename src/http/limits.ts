import type { Server, ServerOptions } from "node:http";
import type { FastifyServerOptions } from "fastify";
import type { Config } from "../config/schema.js";

/** The `http:` limits of the config (PRODUCT.md §2), as the server options below take them. */
export type HttpLimits = Pick<
  Config["http"],
  | "headerTimeout"
  | "requestTimeout"
  | "keepAliveTimeout"
  | "sendTimeout"
  | "maxConnections"
  | "maxRequestsPerSocket"
  | "bodyLimit"
>;

/**
 * How often Node looks for requests over headerTimeout/requestTimeout. Its default (30 s) would
 * let a slowloris connection live up to 30 s past a 10 s header timeout; a sweep over at most
 * maxConnections entries once a second costs nothing next to that.
 */
function checkingIntervalFor(limits: HttpLimits): number {
  return Math.max(100, Math.min(1000, Math.floor(limits.headerTimeout / 2)));
}

/** Fastify's options for the limits that exist only where the server is created. */
export function fastifyLimitOptions(
  limits: HttpLimits,
): Pick<
  FastifyServerOptions,
  "bodyLimit" | "connectionTimeout" | "keepAliveTimeout" | "requestTimeout" | "maxRequestsPerSocket"
> & { http: ServerOptions } {
  return {
    // The API's JSON bodies; boot requests have none.
    bodyLimit: limits.bodyLimit,
    // Socket inactivity: Node counts a write the kernel is still draining as activity, so this
    // closes a reader that stopped reading, never a slow one that makes progress.
    connectionTimeout: limits.sendTimeout,
    keepAliveTimeout: limits.keepAliveTimeout,
    requestTimeout: limits.requestTimeout,
    maxRequestsPerSocket: limits.maxRequestsPerSocket,
    http: {
      headersTimeout: limits.headerTimeout,
      requestTimeout: limits.requestTimeout,
      connectionsCheckingInterval: checkingIntervalFor(limits),
    },
  };
}

/**
 * Apply the limits a running server can change (a reload); bodyLimit and the checking interval
 * are fixed when the server is created and take effect at the next start.
 */
export function applyLimits(server: Server, limits: HttpLimits): void {
  server.headersTimeout = limits.headerTimeout;
  server.requestTimeout = limits.requestTimeout;
  server.keepAliveTimeout = limits.keepAliveTimeout;
  server.maxRequestsPerSocket = limits.maxRequestsPerSocket;
  server.maxConnections = limits.maxConnections;
  server.setTimeout(limits.sendTimeout);
}
