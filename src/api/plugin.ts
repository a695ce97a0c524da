import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { readFile } from "node:fs/promises";
import { HttpError } from "../errors.js";
import { consoleLogFile } from "../files/state-dir.js";
import { listImages } from "../images/images.js";
import { NODE_STATES, type NodeState } from "../lifecycle/lifecycle.js";
import type { Logger } from "../log.js";
import { CallbackRejectedError, ValidationError, type FieldProblem } from "../provisioning/errors.js";
import type { Actor, Inventory, Lifecycle } from "../provisioning/index.js";
import { parseNodeChanges } from "../provisioning/node-input.js";
import { authenticateApiToken, bearerToken } from "../provisioning/tokens.js";
import type { EventFilter, NodeBmc, NodeEvent, NodeFilter, NodeRecord, Store } from "../store/store.js";
import { BOOT_DEVICES, type BootDevice, type BootOptions, POWER_ACTIONS, type PowerAction } from "../bmc/index.js";
import { publicBmc } from "../provisioning/bmc-settings.js";
import type { PowerControl, PowerView } from "../provisioning/power.js";
import { httpStatusOf } from "./http-status.js";
import { openApiDocument } from "./openapi.js";

export const API_PREFIX = "/api/v1";

/**
 * Events in one read (and one SSE replay page): the log is kept forever, and an unbounded read
 * would be the whole history in memory at once.
 */
export const MAX_EVENT_PAGE = 500;

export interface ApiPluginOptions {
  inventory: Inventory;
  lifecycle: Lifecycle;
  /** Live events (the provisioning part's `onEvent`). */
  onEvent(listener: (event: NodeEvent) => void): () => void;
  store: Store;
  logger: Logger;
  /** How often an idle SSE stream gets a comment line, so proxies and clients keep it open. */
  heartbeatMs?: number;
  /** BMC power and boot control (issue 13); without it the power routes answer 501. */
  power?: PowerControl;
}

type Query = Record<string, string | string[] | undefined>;

/**
 * The REST API of PRODUCT.md §5 under /api/v1, as a Fastify plugin the HTTP app registers. Every
 * route needs an admin bearer token (`centra-pxe token create`), reads included: the inventory
 * tells a stranger which machines are about to install. The installer callback is authorised by
 * its own token instead.
 */
export function createApiPlugin(options: ApiPluginOptions): FastifyPluginAsync {
  const { inventory, lifecycle, store } = options;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  let openStreams = 0;

  return async (app: FastifyInstance) => {
    await app.register(
      async (api) => {
        // busybox wget --post-data sends a form; other installers send JSON or nothing. Anything
        // else reaches the handler as text instead of a 415, so the handler can say what is wrong.
        api.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_request, body, done) => {
          done(null, Object.fromEntries(new URLSearchParams(body as string)));
        });
        api.addContentTypeParser("*", { parseAs: "string" }, (_request, body, done) => done(null, body));

        api.setErrorHandler(async (error: unknown, request, reply) => sendError(reply, error, request, options.logger));
        api.setNotFoundHandler(async (request, reply) =>
          reply.code(404).send({
            error: "NOT_FOUND",
            message: `no API route ${request.method} ${request.url.split("?")[0]} (see ${API_PREFIX}/openapi.json)`,
          }),
        );

        /** Who each authenticated request is, checked once in the hook below. */
        const actors = new WeakMap<FastifyRequest, Actor>();
        const authenticate = async (request: FastifyRequest): Promise<Actor> => {
          const result = await authenticateApiToken(store, request.headers.authorization);
          if (!result.ok)
            throw new HttpError(result.status, result.message, result.status === 401 ? "UNAUTHENTICATED" : "FORBIDDEN");
          return `token:${result.token.id} ${result.token.name}`;
        };
        /** The admin behind a request (for its events), or a 401/403. */
        const admin = async (request: FastifyRequest): Promise<Actor> => actors.get(request) ?? authenticate(request);
        const callbackPath = `${API_PREFIX}/nodes/callback`;
        // Every route, unknown ones included, before anything is read; the callback has its own token.
        api.addHook("onRequest", async (request) => {
          if (request.routeOptions.url === callbackPath) return;
          actors.set(request, await authenticate(request));
        });

        // A node's BMC leaves the server only as publicBmc shows it (no password, no password file),
        // whatever route answers with a node: one hook instead of a rule each route must remember.
        api.addHook("preSerialization", async (_request, _reply, payload: unknown) => redactNodes(payload));

        api.get("/openapi.json", async () => openApiDocument());

        api.get("/nodes", async (request) => ({
          nodes: (await inventory.listNodes(nodeFilter(request.query as Query))).map(withPower),
        }));

        api.post("/nodes", async (request, reply) => {
          const actor = await admin(request);
          const changes = parseNodeChanges(request.body, "create", inventory.config);
          if (changes.macs === undefined && changes.bmc) {
            // Discovery through the BMC (Redfish EthernetInterfaces): the node is known before its first boot.
            const found = await powerControl().discover(changes.bmc);
            if (found.macs.length === 0)
              throw new ValidationError([
                { field: "macs", message: `the BMC reports no NIC MAC (${changes.bmc.type}); give the node's MACs` },
              ]);
            changes.macs = found.macs;
            if (changes.uuid === undefined && found.uuid !== undefined) changes.uuid = found.uuid;
            if (found.serial !== undefined) changes.serial = found.serial;
          }
          const { adopted, ...node } = await inventory.createNode(changes, actor);
          // 200 when the machine was already discovered and is now registered, 201 when it is new.
          return reply
            .code(adopted ? 200 : 201)
            .header("location", `${API_PREFIX}/nodes/${node.id}`)
            .send(node);
        });

        // The installer's callback; a static route, so it wins over /nodes/:ref.
        const callback = async (request: FastifyRequest) => {
          const query = request.query as Query;
          const body =
            typeof request.body === "object" && request.body !== null ? (request.body as Record<string, unknown>) : {};
          const field = (name: string): string | undefined => {
            const value = first(query[name]) ?? (typeof body[name] === "string" ? body[name] : undefined);
            return value === undefined || value === "" ? undefined : value;
          };
          const bearer = bearerToken(request.headers.authorization);
          const status = field("status");
          if (status !== undefined && status !== "ok" && status !== "succeeded" && status !== "failed") {
            throw new ValidationError([
              { field: "status", message: `must be ok or failed, got ${JSON.stringify(status)}` },
            ]);
          }
          const mac = field("mac");
          const message = field("message");
          const node = await lifecycle.callback({
            token: field("token") ?? bearer ?? undefined,
            ...(mac !== undefined ? { mac } : {}),
            outcome: status === "failed" ? "failed" : "succeeded",
            ...(message !== undefined ? { message: message.slice(0, 1000) } : {}),
            remote: request.ip,
          });
          return { ok: true, node: { id: node.id, state: node.state } };
        };
        // POST is the contract; GET too, because some busybox wget builds cannot POST.
        api.post("/nodes/callback", callback);
        api.get("/nodes/callback", callback);

        api.get("/nodes/:ref", async (request) => withPower(await inventory.getNode(param(request))));

        api.patch("/nodes/:ref", async (request) => {
          const actor = await admin(request);
          return inventory.updateNode(
            param(request),
            parseNodeChanges(request.body, "update", inventory.config),
            actor,
          );
        });

        api.delete("/nodes/:ref", async (request) => {
          const actor = await admin(request);
          return inventory.removeNode(param(request), actor);
        });

        // `{"power": true}`: the server sets a one-time network boot and power-cycles the machine (issue 13).
        api.post("/nodes/:ref/provision", async (request) =>
          wantsPower(request.body)
            ? powerControl().provisionByPower(param(request), await admin(request))
            : lifecycle.provision(param(request), await admin(request)),
        );
        api.post("/nodes/:ref/reprovision", async (request) =>
          wantsPower(request.body)
            ? powerControl().provisionByPower(param(request), await admin(request), { reprovision: true })
            : lifecycle.provision(param(request), await admin(request), { reprovision: true }),
        );
        // Bulk, by power only: every node the filter (?label=rack=a1&state=ready) selects, bmc.concurrency at a time.
        api.post("/nodes/provision", async (request) => {
          const filter = nodeFilter(request.query as Query);
          if (Object.keys(filter).length === 0)
            throw new ValidationError([
              {
                field: "label",
                message: "give a filter (label, state or profile): bulk provisioning of every node is refused",
              },
            ]);
          if (!wantsPower(request.body))
            throw new ValidationError([
              { field: "power", message: 'bulk provisioning is by power: send {"power": true}' },
            ]);
          const reprovision = (request.body as Record<string, unknown>).reprovision === true;
          return powerControl().provisionMany(filter, await admin(request), { reprovision });
        });

        api.get("/nodes/:ref/power", async (request) => {
          const node = await inventory.getNode(param(request));
          return { node: node.id, ...(await powerControl().status(node.id)) };
        });
        api.post("/nodes/:ref/power", async (request) => {
          const body = objectBody(request.body);
          const action = body.action;
          if (typeof action !== "string" || !(POWER_ACTIONS as readonly string[]).includes(action))
            throw new ValidationError([{ field: "action", message: `must be one of ${POWER_ACTIONS.join(", ")}` }]);
          return powerControl().power(param(request), action as PowerAction, await admin(request));
        });
        api.get("/nodes/:ref/bootdev", async (request) => powerControl().getBootDevice(param(request)));
        api.put("/nodes/:ref/bootdev", async (request) => {
          const body = objectBody(request.body);
          const problems: FieldProblem[] = [];
          const device = body.device;
          if (typeof device !== "string" || !(BOOT_DEVICES as readonly string[]).includes(device))
            problems.push({ field: "device", message: `must be one of ${BOOT_DEVICES.join(", ")}` });
          for (const flag of ["persistent", "efi"] as const)
            if (body[flag] !== undefined && typeof body[flag] !== "boolean")
              problems.push({ field: flag, message: "must be true or false" });
          if (problems.length) throw new ValidationError(problems);
          const options: BootOptions = {};
          if (body.persistent !== undefined) options.persistent = body.persistent as boolean;
          if (body.efi !== undefined) options.efi = body.efi as boolean;
          return powerControl().bootDevice(param(request), device as BootDevice, options, await admin(request));
        });
        api.post("/nodes/:ref/retire", async (request) => lifecycle.retire(param(request), await admin(request)));
        api.post("/nodes/:ref/reactivate", async (request) =>
          lifecycle.reactivate(param(request), await admin(request)),
        );
        // The admin's answer to an identity-conflict event: this MAC is this node's (a new NIC, another port).
        api.post("/nodes/:ref/macs", async (request) => {
          const body =
            typeof request.body === "object" && request.body !== null ? (request.body as Record<string, unknown>) : {};
          if (typeof body.mac !== "string")
            throw new ValidationError([{ field: "mac", message: "is required: the MAC to add to the node" }]);
          return inventory.adoptMac(param(request), body.mac, await admin(request));
        });

        api.get("/nodes/:ref/events", async (request) => {
          const node = await inventory.getNode(param(request));
          return eventPage({ ...(await eventFilter(request.query as Query)), nodeId: node.id });
        });

        // The serial console the server recorded while the node provisioned (SOL): a failed install, read afterwards.
        api.get("/nodes/:ref/console", async (request, reply) => {
          const node = await inventory.getNode(param(request));
          const file = consoleLogFile(inventory.config.stateDir, node.id);
          const text = file ? await readFile(file).catch(() => undefined) : undefined;
          if (text === undefined)
            return reply.code(404).send({
              error: "NO_CONSOLE",
              message: `no console recorded for node ${node.id}: it is recorded over IPMI SOL while a node with an IPMI BMC provisions`,
            });
          return reply.type("text/plain; charset=utf-8").send(text);
        });

        api.get("/events", async (request) => eventPage(await eventFilter(request.query as Query)));

        api.get("/events/stream", async (request, reply) => {
          const filter = await eventFilter(request.query as Query);
          const lastEventId = first(request.headers["last-event-id"]);
          if (lastEventId !== undefined && filter.afterSeq === undefined)
            filter.afterSeq = integer("Last-Event-ID", lastEventId, 0);
          const max = inventory.config.api.maxEventStreams;
          if (openStreams >= max) {
            return reply
              .code(503)
              .header("retry-after", "30")
              .send({
                error: "TOO_MANY_STREAMS",
                message: `${openStreams} event streams are open, the most api.maxEventStreams allows (${max}); close one or raise the limit`,
              });
          }
          streamEvents(request, reply, filter);
        });

        api.get("/images", async (request) => {
          const name = first((request.query as Query).name);
          return { images: await listImages(inventory.config.stateDir, store, name) };
        });

        function powerControl(): PowerControl {
          if (!options.power)
            throw new HttpError(501, "BMC power control is not part of this server", "NOT_IMPLEMENTED");
          return options.power;
        }

        /** A node with its power state as last polled (`power`), when it has a BMC. */
        function withPower(node: NodeRecord): NodeRecord & { power?: PowerView } {
          const power = node.bmc !== undefined ? options.power?.cached(node.id) : undefined;
          return power ? { ...node, power } : node;
        }

        /** One page of events and the cursor for the next (`?after=<next>`); `more` when the page was full. */
        async function eventPage(filter: EventFilter): Promise<{ events: NodeEvent[]; next: number; more: boolean }> {
          const events = await store.events.list(filter);
          const next = events.at(-1)?.seq ?? filter.afterSeq ?? 0;
          return { events, next, more: events.length === filter.limit };
        }

        /** Server-sent events: the replay after `afterSeq`, then live events, without gaps or repeats. */
        function streamEvents(request: FastifyRequest, reply: FastifyReply, filter: EventFilter): void {
          reply.hijack();
          const out = reply.raw;
          out.writeHead(200, {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-store",
            connection: "keep-alive",
            "x-accel-buffering": "no",
          });
          out.write(": centra-pxe events\n\n");
          let lastSeq = filter.afterSeq ?? 0;
          let replaying = true;
          const held: NodeEvent[] = [];
          const send = (event: NodeEvent) => {
            if (event.seq <= lastSeq) return;
            if (filter.nodeId !== undefined && event.nodeId !== filter.nodeId) return;
            if (filter.kind !== undefined && event.kind !== filter.kind) return;
            lastSeq = event.seq;
            out.write(`id: ${event.seq}\ndata: ${JSON.stringify(event)}\n\n`);
          };
          // Subscribe before reading the replay, and hold live events until it is written.
          openStreams++;
          const unsubscribe = options.onEvent((event) => (replaying ? held.push(event) : send(event)));
          const heartbeat = setInterval(() => out.write(": keep-alive\n\n"), heartbeatMs);
          heartbeat.unref();
          let closed = false;
          const close = () => {
            if (closed) return;
            closed = true;
            openStreams--;
            clearInterval(heartbeat);
            unsubscribe();
          };
          request.raw.on("close", close);
          out.on("close", close);
          /** The history after `afterSeq`, one page at a time, each written (and drained) before the next is read. */
          const replay = async () => {
            if (filter.afterSeq === undefined) return;
            for (;;) {
              const page = await store.events.list({ ...filter, afterSeq: lastSeq, limit: MAX_EVENT_PAGE });
              for (const event of page) send(event);
              if (page.length < MAX_EVENT_PAGE || closed) return;
              if (out.writableNeedDrain)
                await new Promise((resolve) => out.once("drain", resolve).once("close", resolve));
            }
          };
          replay().then(
            () => {
              replaying = false;
              for (const event of held.splice(0)) send(event);
            },
            (error: unknown) => {
              options.logger.error({ err: error }, "event stream replay failed");
              out.end();
            },
          );
        }

        async function eventFilter(query: Query): Promise<EventFilter> {
          const problems: FieldProblem[] = [];
          const filter: EventFilter = {};
          const node = first(query.node);
          if (node !== undefined) filter.nodeId = (await inventory.findNode(node))?.id ?? node;
          const kind = first(query.kind);
          if (kind !== undefined) filter.kind = kind;
          const since = first(query.since);
          if (since !== undefined) {
            const at = new Date(since);
            if (Number.isNaN(at.getTime()))
              problems.push({
                field: "since",
                message: `${JSON.stringify(since)} is not a date and time (ISO 8601, e.g. 2026-11-25T20:00:00Z)`,
              });
            else filter.since = at.toISOString();
          }
          const after = first(query.after);
          const limit = first(query.limit);
          try {
            if (after !== undefined) filter.afterSeq = integer("after", after, 0);
            if (limit !== undefined) filter.limit = integer("limit", limit, 1, MAX_EVENT_PAGE);
          } catch (error) {
            if (error instanceof ValidationError) problems.push(...error.problems);
            else throw error;
          }
          if (problems.length) throw new ValidationError(problems);
          // A read by time pages forward from the oldest match, like one by cursor.
          if (filter.since !== undefined && filter.afterSeq === undefined) filter.afterSeq = 0;
          filter.limit ??= MAX_EVENT_PAGE;
          return filter;
        }
      },
      { prefix: API_PREFIX },
    );
  };
}

function objectBody(body: unknown): Record<string, unknown> {
  return typeof body === "object" && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}

function wantsPower(body: unknown): boolean {
  return objectBody(body).power === true;
}

/** Replace each node's `bmc` in an answer by its public view (nodes, `{ nodes }`, `{ node }`). */
export function redactNodes(payload: unknown): unknown {
  if (Array.isArray(payload)) return payload.map(redactNodes);
  if (typeof payload !== "object" || payload === null) return payload;
  const record = payload as Record<string, unknown>;
  let out = record;
  const bmc = record.bmc;
  if (typeof bmc === "object" && bmc !== null && "type" in bmc && "address" in bmc)
    out = { ...out, bmc: publicBmc(bmc as NodeBmc) };
  for (const key of ["nodes", "node"])
    if (key in record && typeof record[key] === "object") out = { ...out, [key]: redactNodes(record[key]) };
  return out;
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function param(request: FastifyRequest): string {
  return (request.params as { ref: string }).ref;
}

function integer(field: string, text: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ValidationError([
      { field, message: `must be a whole number from ${min} to ${max}, got ${JSON.stringify(text)}` },
    ]);
  }
  return value;
}

/** `?state=ready&profile=worker&label=rack=a1&label=role=db` */
function nodeFilter(query: Query): NodeFilter {
  const problems: FieldProblem[] = [];
  const filter: NodeFilter = {};
  const state = first(query.state);
  if (state !== undefined) {
    if ((NODE_STATES as readonly string[]).includes(state)) filter.state = state as NodeState;
    else
      problems.push({
        field: "state",
        message: `unknown state ${JSON.stringify(state)} (one of ${NODE_STATES.join(", ")})`,
      });
  }
  const profile = first(query.profile);
  if (profile !== undefined) filter.profile = profile;
  const labels = query.label === undefined ? [] : Array.isArray(query.label) ? query.label : [query.label];
  for (const label of labels) {
    const eq = label.indexOf("=");
    if (eq <= 0) problems.push({ field: "label", message: `${JSON.stringify(label)} is not key=value` });
    else (filter.labels ??= {})[label.slice(0, eq)] = label.slice(eq + 1);
  }
  if (problems.length) throw new ValidationError(problems);
  return filter;
}

/** Every error as `{ error, message, problems? }` with the status http-status.ts gives its code. */
function sendError(reply: FastifyReply, error: unknown, request: FastifyRequest, logger: Logger): FastifyReply {
  const status = httpStatusOf(error);
  if (status !== undefined) {
    const coded = error as { code: string; message: string };
    if (status === 401)
      reply.header(
        "www-authenticate",
        error instanceof CallbackRejectedError ? 'Bearer realm="centra-pxe-callback"' : 'Bearer realm="centra-pxe"',
      );
    return reply.code(status).send({
      error: coded.code,
      message: coded.message,
      ...(error instanceof ValidationError ? { problems: error.problems } : {}),
      ...(error instanceof CallbackRejectedError ? { reason: error.reason } : {}),
      ...(typeof error === "object" && error !== null && "field" in error ? { field: error.field } : {}),
    });
  }
  // Fastify's own (a body that is not JSON, too large): keep its status, say it plainly.
  const fastifyStatus =
    typeof error === "object" && error !== null && "statusCode" in error && typeof error.statusCode === "number"
      ? error.statusCode
      : 500;
  if (fastifyStatus < 500)
    return reply.code(fastifyStatus).send({ error: `HTTP_${fastifyStatus}`, message: (error as Error).message });
  logger.error({ err: error, method: request.method, url: request.url }, "API request failed");
  return reply.code(500).send({ error: "INTERNAL", message: "internal error; see the server log" });
}
