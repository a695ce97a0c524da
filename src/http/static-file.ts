import { closeSync, constants, fstatSync, openSync } from "node:fs";
import type { FastifyReply, FastifyRequest } from "fastify";
import { NotFoundError, PathEscapeError } from "../errors.js";
import { resolveInside } from "../files/safe-path.js";
import type { Logger } from "../log.js";
import { planFileResponse } from "./file-response.js";
import { streamFileRange } from "./file-stream.js";

function contentTypeOf(name: string): string {
  if (name.endsWith(".ipxe")) return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

/** Logs a refused path; the app rate-limits it (a scanner sends them by the thousand). */
export type RefusedPathLogger = (fields: Record<string, unknown>, message: string) => void;

/**
 * Serve `name` from inside `root`: path-checked, streamed (never read whole), with Content-Length,
 * Range, HEAD, ETag and Last-Modified. A refused path is 400, a missing one 404; nothing outside
 * `root` is ever opened.
 */
export async function sendFile(
  request: FastifyRequest,
  reply: FastifyReply,
  root: string,
  name: string,
  logger: Logger,
  warnRefused: RefusedPathLogger,
): Promise<void> {
  let fd: number;
  try {
    const resolved = await resolveInside(root, name);
    // O_NOFOLLOW: the path is already the real one, so a symlink here means it was swapped in
    // after the check; refuse rather than follow it out. Opened and stat'ed synchronously, as
    // resolveInside resolves (safe-path.ts says why): a few microseconds each on a served
    // directory, where each trip through the thread pool waited for a wake-up, and on a loaded
    // machine waited milliseconds for a core (a lone 8 MB download spent more time in those
    // trips than in sending).
    fd = openSync(resolved.path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    if (error instanceof PathEscapeError) {
      warnRefused({ path: name, url: request.raw.url }, "refused a path outside the served root");
      await reply.code(400).type("text/plain; charset=utf-8").send("bad path\n");
      return;
    }
    if (error instanceof NotFoundError || isMissing(error)) {
      await reply.code(404).type("text/plain; charset=utf-8").send("not found\n");
      return;
    }
    throw error;
  }

  let handedOver = false;
  try {
    // The open file's own stats: what we stream is exactly what the headers describe, even if
    // the name is replaced meanwhile.
    const stats = fstatSync(fd);
    if (!stats.isFile()) {
      await reply.code(404).type("text/plain; charset=utf-8").send("not found\n");
      return;
    }
    const plan = planFileResponse(
      {
        method: request.method,
        range: header(request, "range"),
        ifNoneMatch: header(request, "if-none-match"),
        ifModifiedSince: header(request, "if-modified-since"),
        ifRange: header(request, "if-range"),
      },
      { size: stats.size, mtimeMs: stats.mtimeMs },
      contentTypeOf(name),
    );

    // Past this point the response is ours to write: Fastify's serializers and hooks have nothing
    // to add to a file body, and writing to the raw response keeps the copy path short.
    reply.hijack();
    const response = reply.raw;
    // Set one by one rather than passed to writeHead: only then can the observer read the
    // Content-Length back (getHeader) once the response ended.
    for (const [name, value] of Object.entries(plan.headers)) response.setHeader(name, value);
    response.writeHead(plan.status);
    if (!plan.body) {
      response.end();
      return;
    }
    handedOver = true;
    try {
      await streamFileRange(fd, response, plan.body.start, plan.body.end);
    } catch (error) {
      // Almost always the client going away mid-download (iPXE gives up, curl is killed). The
      // response is already partial; closing it is all that is left to do.
      logger.debug({ err: error, path: name }, "file download ended early");
    }
  } finally {
    if (!handedOver) closeSync(fd);
  }
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function isMissing(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "ENOENT" || code === "ENOTDIR" || code === "ELOOP" || code === "EISDIR";
}
