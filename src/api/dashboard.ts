import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "../log.js";

/** Where the dashboard lives on the HTTP port: `/ui/` (and `/`, which redirects there). */
export const DASHBOARD_PATH = "/ui/";

/**
 * The dashboard may run only its own script and style, talk only to this origin (the API), and be
 * framed by no one: a stored string that slips past Preact's escaping still cannot run or leak.
 * Preact sets SVG geometry and classes through the DOM, never inline `style=` markup.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS = {
  "content-security-policy": DASHBOARD_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

export interface DashboardOptions {
  /** The built bundle (`index.html`, `assets/`); default: dist/ui beside this module's build. */
  dir?: string;
  logger: Logger;
}

/**
 * The bundle `npm run build` writes (scripts/build-ui.mjs), read whole into memory when HTTP starts:
 * a request names a key of this map or gets a 404, so no path a stranger sends (`/ui/../…`, an
 * encoded dot, a symlink) can reach the file system. It embeds no data: everything it shows comes
 * from the API with the token the operator signs in with.
 */
export function createDashboardPlugin(options: DashboardOptions): FastifyPluginAsync {
  const dir = options.dir ?? defaultDashboardDir();
  return async (app) => {
    const assets = loadBundle(dir);
    if (!assets.has("index.html"))
      options.logger.warn({ dir }, "dashboard bundle not found: /ui answers 404 (npm run build writes it)");

    const send = (request: FastifyRequest, reply: FastifyReply, asset: Asset, immutable: boolean) => {
      reply.headers(SECURITY_HEADERS);
      // Hashed asset names never change content; index.html names the current ones, so it is revalidated.
      reply.header("cache-control", immutable ? "public, max-age=31536000, immutable" : "no-cache");
      reply.header("etag", asset.etag);
      if (request.headers["if-none-match"] === asset.etag) return reply.code(304).send();
      reply.type(asset.type).header("content-length", asset.body.length);
      return reply.send(request.method === "HEAD" ? undefined : asset.body);
    };
    const notBuilt = (reply: FastifyReply) =>
      reply
        .code(404)
        .type("text/plain; charset=utf-8")
        .send("the dashboard is not built into this install (npm run build writes dist/ui)\n");

    app.route({
      method: ["GET", "HEAD"],
      url: "/",
      handler: async (_request, reply) => reply.redirect(DASHBOARD_PATH, 302),
    });
    app.route({
      method: ["GET", "HEAD"],
      url: "/ui",
      handler: async (_request, reply) => reply.redirect(DASHBOARD_PATH, 301),
    });
    app.route({
      method: ["GET", "HEAD"],
      url: DASHBOARD_PATH,
      handler: async (request, reply) => {
        const index = assets.get("index.html");
        return index ? send(request, reply, index, false) : notBuilt(reply);
      },
    });
    app.route<{ Params: { file: string } }>({
      method: ["GET", "HEAD"],
      url: `${DASHBOARD_PATH}assets/:file`,
      handler: async (request, reply) => {
        const asset = assets.get(`assets/${request.params.file}`);
        if (!asset) return reply.code(404).type("text/plain; charset=utf-8").send("not found\n");
        return send(request, reply, asset, true);
      },
    });
  };
}

/** dist/ui: beside dist/api when built; from a source checkout (tsx), the checkout's dist/ui. */
export function defaultDashboardDir(): string {
  const built = fileURLToPath(new URL("../ui/", import.meta.url));
  return existsSync(join(built, "index.html")) ? built : fileURLToPath(new URL("../../dist/ui/", import.meta.url));
}

/** `index.html` and the files of `assets/` (one level, regular files of known types); nothing else. */
function loadBundle(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const add = (name: string) => {
    const path = join(dir, name);
    const type = CONTENT_TYPES[name.slice(name.lastIndexOf("."))];
    if (type === undefined || !statSync(path).isFile()) return;
    const body = readFileSync(path);
    assets.set(name, { body, type, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"` });
  };
  if (!existsSync(join(dir, "index.html"))) return assets;
  add("index.html");
  const assetDir = join(dir, "assets");
  if (existsSync(assetDir)) for (const name of readdirSync(assetDir)) add(`assets/${name}`);
  return assets;
}
