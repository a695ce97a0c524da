import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { readFile } from "node:fs/promises";
import { CentraError, HttpError, NotFoundError } from "../errors.js";
import { type LeaseRecord, leaseStatus } from "../contracts/lease-store.js";
import { listImages, useImage } from "../images/images.js";
import { DEFAULT_IMAGE_ARCH, IMAGE_ARCHES, consoleLogFile, isImageArch } from "../files/state-dir.js";
import { NODE_STATES, type NodeState } from "../lifecycle/lifecycle.js";
import type { Logger } from "../log.js";
import { CallbackRejectedError, ConflictError, ValidationError, type FieldProblem } from "../provisioning/errors.js";
import type { Actor, Inventory, Lifecycle } from "../provisioning/index.js";
import { parseNodeChanges } from "../provisioning/node-input.js";
import { bearerToken, createApiToken } from "../provisioning/tokens.js";
import {
  AUDIT_OUTCOMES,
  type AuditFilter,
  type AuditOutcome,
  type AuditRecord,
  type EventFilter,
  type NodeEvent,
  type NodeBmc,
  type NodeFilter,
  type NodeRecord,
  type Store,
} from "../store/store.js";
import { unmappedAddress } from "../config/primitives.js";
import { inScope, narrowLabels, refusal, routeAccessTable, routeKeyOf, type RouteAccess } from "../identity/access.js";
import { outcomeOf, summarizeChange } from "../identity/audit.js";
import { type Authenticator, createAuthenticator } from "../identity/authenticate.js";
import { parseTokenGrant } from "../identity/grant.js";
import { actorLabel, type Principal } from "../identity/principal.js";
import type { TimelinePart } from "../timeline/service.js";
import type { AlertsPart } from "../alerts/service.js";
import { normalizeMac } from "../config/primitives.js";
import { BOOT_DEVICES, type BootDevice, type BootOptions, POWER_ACTIONS, type PowerAction } from "../bmc/index.js";
import { publicBmc } from "../provisioning/bmc-settings.js";
import type { PowerControl, PowerView } from "../provisioning/power.js";
import { httpStatusOf } from "./http-status.js";
import {
  type FleetSummary,
  fleetSummaryOf,
  MAX_NODE_PAGE,
  pageNodes,
  summarizeFleet,
  type NodePageQuery,
} from "./node-page.js";
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
  /** DHCP's leases, for `GET /leases`; absent when DHCP is off (the route then lists none). */
  leases?: () => Promise<LeaseRecord[]>;
  /** The boot timeline (`/nodes/{ref}/boots`, `/boots`); without it those routes answer 404. */
  timeline?: Pick<TimelinePart, "boots" | "boot" | "recent">;
  /** Alerts firing now (`/alerts`). */
  alerts?: Pick<AlertsPart, "active">;
  /** Who a bearer credential is (local tokens, and `auth.oidc` JWTs); default: one over `store` and the inventory's config. */
  authenticator?: Authenticator;
  /** BMC power and boot control (issue 13); without it the power routes answer 501. */
  power?: PowerControl;
}

/** Audit records in one read of `GET /audit`. */
export const MAX_AUDIT_PAGE = 500;

/** What the API knows of one request once it is authenticated: for the handlers, the scope checks and the audit trail. */
interface RequestContext {
  access: RouteAccess | undefined;
  principal: Principal;
  /** The route as the OpenAPI document writes it (`POST /nodes/{ref}`). */
  key: string;
  /** Refused because the node it names lies outside the caller's scope (answered 404, recorded as denied). */
  outOfScope?: boolean;
}

/** Attempts in one `/boots` read. */
export const MAX_BOOTS_PAGE = 500;

type Query = Record<string, string | string[] | undefined>;

/**
 * The REST API of PRODUCT.md §5 under /api/v1, as a Fastify plugin the HTTP app registers. Every
 * route needs a bearer credential (a local token or an `auth.oidc` JWT) with the role its OpenAPI
 * operation declares (src/identity/access.ts), reads included: the inventory tells a stranger which
 * machines are about to install. The installer callback is authorised by its own token instead.
 * Every change is recorded in the audit trail before its answer leaves.
 */
export function createApiPlugin(options: ApiPluginOptions): FastifyPluginAsync {
  const { inventory, lifecycle, store } = options;
  const authenticator = options.authenticator ?? createAuthenticator({ store, oidc: () => inventory.config.auth.oidc });
  const accessTable = routeAccessTable(openApiDocument());
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  let openStreams = 0;

  return async (app: FastifyInstance) => {
    const fleet = createFleetSummaries(inventory, store, options.onEvent);
    app.addHook("onClose", async () => fleet.close());
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

        // A route the OpenAPI document does not give a role is refused for everyone (below); say so
        // when it is registered, not first when someone calls it.
        api.addHook("onRoute", (route) => {
          for (const method of [route.method].flat()) {
            if (method === "HEAD" || method === "OPTIONS") continue;
            const key = routeKeyOf(method, route.url, API_PREFIX);
            const access = accessTable.get(key);
            if (access === undefined || access.kind === "undeclared")
              options.logger.error(
                { route: key },
                `API route ${key} declares no role in the OpenAPI document; it is refused for everyone`,
              );
          }
        });

        /** Who each authenticated request is and what it asks, settled once in the hook below. */
        const contexts = new WeakMap<FastifyRequest, RequestContext>();
        const authenticate = async (request: FastifyRequest): Promise<Principal> => {
          const result = await authenticator.authenticate(request.headers.authorization);
          if (!result.ok)
            throw new AccessError(
              result.status,
              result.message,
              result.status === 401 ? "UNAUTHENTICATED" : result.status === 403 ? "FORBIDDEN" : "UNAVAILABLE",
              result.challenge,
            );
          return result.principal;
        };
        /** The caller behind a request, as node events name it (every handler behind the hook has one). */
        const principal = (request: FastifyRequest): Principal => {
          const context = contexts.get(request);
          if (!context) throw new HttpError(401, "this request carries no credential", "UNAUTHENTICATED");
          return context.principal;
        };
        // Named when every caller was an admin; the handlers (and other parts' routes) call it for the actor of their events.
        const admin = async (request: FastifyRequest): Promise<Actor> => actorLabel(principal(request));
        // Every route, unknown ones included, before anything is read: authenticate, then the role the
        // route's OpenAPI operation declares (none declared: refused), then the caller's label scope
        // on the node the route names. The callback has its own token.
        api.addHook("onRequest", async (request) => {
          const url = request.routeOptions.url;
          const key = url === undefined ? "" : routeKeyOf(request.method, url, API_PREFIX);
          const access = url === undefined ? undefined : accessTable.get(key);
          if (access?.kind === "own-credential") return;
          const caller = await authenticate(request);
          const context: RequestContext = { access, principal: caller, key };
          contexts.set(request, context);
          if (url === undefined) return; // no such route: the 404 follows, to callers only
          const refused = refusal(caller, access, key);
          if (refused) {
            throw new AccessError(
              403,
              refused.message,
              refused.code,
              'Bearer realm="centra-pxe", error="insufficient_scope"',
              {
                ...(refused.requiredRole ? { requiredRole: refused.requiredRole } : {}),
              },
            );
          }
          // A node outside the caller's scope is answered like one that does not exist: a scoped
          // token learns nothing of the rest of the fleet, not even which MACs or names are taken.
          const ref = nodeRefOf(request);
          if (caller.scope !== undefined && ref !== undefined) {
            const node = await inventory.findNode(ref);
            if (node && !inScope(node.labels, caller.scope)) {
              context.outOfScope = true;
              throw new NotFoundError(`node ${ref}`);
            }
          }
        });

        // The audit trail: every change (whatever its outcome) by an authenticated caller, written
        // before the answer leaves, so a client that saw its answer finds the record.
        api.addHook("onSend", async (request, reply, payload) => {
          const context = contexts.get(request);
          if (!context || request.routeOptions.url === undefined) return payload;
          if (request.method === "GET" || request.method === "HEAD" || request.method === "OPTIONS") return payload;
          const ref = Object.values((request.params ?? {}) as Record<string, string>)[0];
          try {
            await store.audit.append({
              at: new Date().toISOString(),
              actor: context.principal.actor,
              action: context.key,
              ...(ref !== undefined ? { target: ref } : {}),
              summary: summarizeChange(request.body),
              address: unmappedAddress(request.ip),
              outcome: outcomeOf(reply.statusCode, context.outOfScope),
              status: reply.statusCode,
            });
          } catch (error) {
            options.logger.error({ err: error, action: context.key }, "audit record could not be written");
          }
          return payload;
        });

        // A node's BMC leaves the server only as publicBmc shows it (no password, no password file),
        // whatever route answers with a node: one hook instead of a rule each route must remember.
        api.addHook("preSerialization", async (_request, _reply, payload: unknown) => redactNodes(payload));

        api.get("/openapi.json", async () => openApiDocument());

        // Who the caller is and what it may do: a dashboard shows only the buttons that would work.
        api.get("/whoami", async (request) => {
          const { role, scope, actor } = principal(request);
          return { role, ...(scope ? { scope } : {}), actor };
        });

        api.get("/nodes", async (request) => {
          const query = request.query as Query;
          const page = pageNodes(await visibleNodes(request, nodeFilter(query)), nodePageQuery(query));
          return { ...page, nodes: page.nodes.map(withPower) };
        });

        // The overview's numbers in one read: counts by state and profile, the attempts under way.
        api.get("/fleet", async (request) =>
          principal(request).scope === undefined
            ? fleet.summary()
            : { ...summarizeFleet(await visibleNodes(request, {})), asOfSeq: fleet.lastSeq() },
        );

        api.get("/leases", async (request) => {
          const all = first((request.query as Query).all);
          const now = Date.now();
          let leases = (await options.leases?.()) ?? [];
          // A scoped caller sees the leases of its own nodes only, like every other read.
          if (principal(request).scope !== undefined) {
            const macs = new Set((await visibleNodes(request, {})).flatMap((node) => node.macs));
            leases = leases.filter((lease) => macs.has(lease.mac));
          }
          return {
            leases: leases
              .filter((lease) => all === "1" || all === "true" || (lease.state === "bound" && lease.expiresAt > now))
              .map((lease) => ({
                ...lease,
                status: leaseStatus(lease, now),
                expiresAt: new Date(lease.expiresAt).toISOString(),
                updatedAt: new Date(lease.updatedAt).toISOString(),
              })),
          };
        });

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

        api.get("/events", async (request) => {
          const page = await eventPage(await eventFilter(request.query as Query));
          const visible = scopeFilter(request);
          if (!visible) return page;
          const events: NodeEvent[] = [];
          for (const event of page.events) if (await visible(event)) events.push(event);
          return { ...page, events };
        });

        // Tokens, for admins who are not on the server host (an OIDC admin, the dashboard): the
        // same as `centra-pxe token`, each change on the audit trail with who made it.
        api.get("/tokens", async () => ({
          tokens: (await store.apiTokens.list()).map(({ hash: _hash, ...token }) => token),
        }));

        api.post("/tokens", async (request, reply) => {
          const body = (typeof request.body === "object" && request.body !== null ? request.body : {}) as Record<
            string,
            unknown
          >;
          const problems: FieldProblem[] = [];
          const name = body.name;
          if (typeof name !== "string" || name.trim() === "" || name.length > 100)
            problems.push({ field: "name", message: "is required: what the token is for, at most 100 characters" });
          const parsed = parseTokenGrant(body);
          if ("problems" in parsed) problems.push(...parsed.problems);
          const unknown = Object.keys(body).filter((key) => !["name", "role", "scope", "expires"].includes(key));
          for (const key of unknown)
            problems.push({ field: key, message: "unknown field (name, role, scope, expires)" });
          if (problems.length || !("grant" in parsed)) throw new ValidationError(problems);
          const { record, token } = await createApiToken(store, name as string, parsed.grant);
          const { hash: _hash, ...shown } = record;
          return reply.code(201).send({ ...shown, token });
        });

        api.delete("/tokens/:id", async (request) => {
          const { id } = request.params as { id: string };
          const at = new Date().toISOString();
          if (await store.apiTokens.revoke(id, at)) return { id, revokedAt: at };
          const known = (await store.apiTokens.list()).find((token) => token.id === id);
          if (!known) throw new NotFoundError(`token ${id}`);
          throw new ConflictError("id", `token ${id} was already revoked at ${known.revokedAt}`);
        });

        api.get("/audit", async (request) => {
          const filter = auditFilter(request.query as Query);
          const records: AuditRecord[] = await store.audit.list(filter);
          const more = records.length === filter.limit;
          return { records, ...(more ? { next: records.at(-1)!.seq } : {}), more };
        });

        /**
         * The machine behind a `/nodes/{ref}/boots` ref: a node of the inventory (all its MACs), or a
         * MAC the inventory does not hold (a machine that booted and was never recorded).
         */
        const bootsOf = async (request: FastifyRequest): Promise<{ macs: string[]; nodeId?: string }> => {
          const ref = param(request);
          const node = await inventory.findNode(ref);
          if (node) return { macs: node.macs, nodeId: node.id };
          const mac = normalizeMac(ref);
          // A machine outside the inventory carries no labels: outside every label scope.
          if (mac !== undefined && principal(request).scope === undefined) return { macs: [mac] };
          throw new NotFoundError(`node ${ref}`);
        };
        const timeline = () => {
          if (!options.timeline) throw new NotFoundError("boot timeline (not enabled in this server)");
          return options.timeline;
        };

        api.get("/nodes/:ref/boots", async (request) => {
          const { macs, nodeId } = await bootsOf(request);
          return { boots: timeline().boots(macs, nodeId) };
        });

        api.get("/nodes/:ref/boots/:attempt", async (request) => {
          const { macs, nodeId } = await bootsOf(request);
          const number = integer("attempt", (request.params as { attempt: string }).attempt, 1);
          const found = timeline().boot(macs, number, nodeId);
          if (!found) throw new NotFoundError(`boot attempt ${number} of ${param(request)}`);
          return found;
        });

        api.get("/alerts", async (request) => {
          let active = options.alerts?.active() ?? [];
          // A scoped caller sees the alerts of its own nodes only (a part down names no node).
          if (principal(request).scope !== undefined) {
            const visible = new Set((await visibleNodes(request, {})).map((node) => node.id));
            active = active.filter((alert) => alert.labels.node !== undefined && visible.has(alert.labels.node));
          }
          return {
            alerts: active.map((alert) => ({
              key: alert.key,
              labels: alert.labels,
              annotations: alert.annotations,
              startsAt: new Date(alert.startsAt).toISOString(),
            })),
          };
        });

        api.get("/boots", async (request) => {
          const query = request.query as Query;
          const since = first(query.since);
          const limit = first(query.limit);
          const problems: FieldProblem[] = [];
          let sinceMs = 0;
          if (since !== undefined) {
            sinceMs = Date.parse(since);
            if (Number.isNaN(sinceMs))
              problems.push({ field: "since", message: `${JSON.stringify(since)} is not a date and time (ISO 8601)` });
          }
          let count = 100;
          try {
            if (limit !== undefined) count = integer("limit", limit, 1, MAX_BOOTS_PAGE);
          } catch (error) {
            if (error instanceof ValidationError) problems.push(...error.problems);
            else throw error;
          }
          if (problems.length) throw new ValidationError(problems);
          const verdict = first(query.verdict);
          let boots = timeline().recent(sinceMs, verdict === undefined ? count : MAX_BOOTS_PAGE);
          if (principal(request).scope !== undefined) {
            const visible = new Set((await visibleNodes(request, {})).map((node) => node.id));
            boots = boots.filter((boot) => boot.nodeId !== undefined && visible.has(boot.nodeId));
          }
          return {
            boots: (verdict === undefined ? boots : boots.filter((b) => b.verdict === verdict)).slice(0, count),
          };
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
          streamEvents(request, reply, filter, scopeFilter(request));
        });

        /**
         * For a scoped caller, whether an event is about a node in its scope now (a node's labels can
         * change; a removed node's events are out of every scope); undefined for an unscoped one.
         */
        function scopeFilter(request: FastifyRequest): ((event: NodeEvent) => Promise<boolean>) | undefined {
          const { scope } = principal(request);
          if (scope === undefined) return undefined;
          const known = new Map<string, Promise<boolean>>();
          return (event) => {
            let answer = known.get(event.nodeId);
            if (!answer) {
              answer = store.nodes.get(event.nodeId).then((node) => node !== undefined && inScope(node.labels, scope));
              known.set(event.nodeId, answer);
            }
            return answer;
          };
        }

        api.get("/images", async (request) => {
          const name = first((request.query as Query).name);
          return { images: await listImages(inventory.config.stateDir, store, name) };
        });

        // `images use NAME VERSION` over the API: the dashboard's "switch back" (a rollback is a switch).
        api.put("/images/:name/current", async (request) => {
          const actor = await admin(request);
          const { name } = request.params as { name: string };
          const body =
            typeof request.body === "object" && request.body !== null ? (request.body as Record<string, unknown>) : {};
          if (typeof body.version !== "string")
            throw new ValidationError([{ field: "version", message: "is required: the version to make current" }]);
          const arch = body.arch ?? DEFAULT_IMAGE_ARCH;
          if (typeof arch !== "string" || !isImageArch(arch))
            throw new ValidationError([{ field: "arch", message: `is one of ${IMAGE_ARCHES.join(", ")}` }]);
          try {
            await useImage(inventory.config.stateDir, name, body.version, arch);
          } catch (error) {
            if (error instanceof CentraError && error.code === "IMAGE_NAME")
              throw new ValidationError([{ field: "version", message: error.message }]);
            throw error;
          }
          options.logger.info({ image: name, arch, version: body.version, actor }, "image current version switched");
          return { images: await listImages(inventory.config.stateDir, store, name) };
        });

        /** The nodes a filter matches that the caller may see (a scoped token: those carrying its labels). */
        async function visibleNodes(request: FastifyRequest, filter: NodeFilter) {
          const { scope } = principal(request);
          if (scope === undefined) return inventory.listNodes(filter);
          const labels = narrowLabels(filter.labels, scope);
          return labels === undefined ? [] : inventory.listNodes({ ...filter, labels });
        }

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
        function streamEvents(
          request: FastifyRequest,
          reply: FastifyReply,
          filter: EventFilter,
          visible?: (event: NodeEvent) => Promise<boolean>,
        ): void {
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
          const write = (event: NodeEvent) => {
            if (event.seq <= lastSeq) return;
            if (filter.nodeId !== undefined && event.nodeId !== filter.nodeId) return;
            if (filter.kind !== undefined && event.kind !== filter.kind) return;
            lastSeq = event.seq;
            out.write(`id: ${event.seq}\ndata: ${JSON.stringify(event)}\n\n`);
          };
          // A scoped caller's events pass its scope check one after another, so they keep their order.
          let queue = Promise.resolve();
          const send = visible
            ? (event: NodeEvent) => {
                queue = queue.then(async () => {
                  if (!closed && (await visible(event))) write(event);
                });
              }
            : write;
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
            // Its own cursor: events a scope hides are read past, though never written.
            let cursor = filter.afterSeq;
            for (;;) {
              const page = await store.events.list({ ...filter, afterSeq: cursor, limit: MAX_EVENT_PAGE });
              for (const event of page) send(event);
              cursor = page.at(-1)?.seq ?? cursor;
              await queue;
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

        function auditFilter(query: Query): AuditFilter & { limit: number } {
          const problems: FieldProblem[] = [];
          const filter: AuditFilter = {};
          for (const field of ["actor", "action", "target"] as const) {
            const value = first(query[field]);
            if (value !== undefined && value !== "") filter[field] = value;
          }
          const outcome = first(query.outcome);
          if (outcome !== undefined) {
            if ((AUDIT_OUTCOMES as readonly string[]).includes(outcome)) filter.outcome = outcome as AuditOutcome;
            else problems.push({ field: "outcome", message: `must be one of ${AUDIT_OUTCOMES.join(", ")}` });
          }
          for (const field of ["since", "until"] as const) {
            const text = first(query[field]);
            if (text === undefined) continue;
            const at = new Date(text);
            if (Number.isNaN(at.getTime()))
              problems.push({
                field,
                message: `${JSON.stringify(text)} is not a date and time (ISO 8601, e.g. 2026-11-25T20:00:00Z)`,
              });
            else filter[field] = at.toISOString();
          }
          let limit = 100;
          try {
            const before = first(query.before);
            if (before !== undefined) filter.beforeSeq = integer("before", before, 1);
            const asked = first(query.limit);
            if (asked !== undefined) limit = integer("limit", asked, 1, MAX_AUDIT_PAGE);
          } catch (error) {
            if (error instanceof ValidationError) problems.push(...error.problems);
            else throw error;
          }
          if (problems.length) throw new ValidationError(problems);
          return { ...filter, limit };
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

/** A refused credential or role: the status, and the `WWW-Authenticate` challenge of RFC 6750 §3. */
class AccessError extends HttpError {
  constructor(
    status: number,
    message: string,
    code: string,
    readonly challenge: string,
    readonly details: Record<string, string> = {},
  ) {
    super(status, message, code);
  }
}

/**
 * Listing 10,000 nodes takes the store a few hundred milliseconds on a busy host, so the store counts
 * (`countBy`, where it has it) and only the nodes in provisioning are read; every open overview asks
 * for the summary after each burst of events. So the whole fleet's summary is kept
 * until an event (every change to a node is one) and then recomputed at most once per
 * FLEET_SUMMARY_INTERVAL_MS however many dashboards ask, one listing at a time. `asOfSeq` says
 * which events it includes: a dashboard that saw a later one asks again.
 */
const FLEET_SUMMARY_INTERVAL_MS = 1000;

function createFleetSummaries(inventory: Inventory, store: Store, onEvent: ApiPluginOptions["onEvent"]) {
  let lastSeq = 0;
  let dirty = true;
  let kept: { summary: FleetSummary; computedAt: number } | undefined;
  let computing: Promise<FleetSummary> | undefined;
  const unsubscribe = onEvent((event) => {
    lastSeq = Math.max(lastSeq, event.seq);
    dirty = true;
  });
  return {
    lastSeq: () => lastSeq,
    close: unsubscribe,
    summary(): Promise<FleetSummary> {
      if (kept && (!dirty || Date.now() - kept.computedAt < FLEET_SUMMARY_INTERVAL_MS))
        return Promise.resolve(kept.summary);
      computing ??= (async () => {
        dirty = false;
        const asOfSeq = lastSeq;
        const counted = store.nodes.countBy
          ? fleetSummaryOf(
              await store.nodes.countBy("state"),
              await store.nodes.countBy("profile"),
              await inventory.listNodes({ state: "provisioning" }),
            )
          : summarizeFleet(await inventory.listNodes());
        const summary = { ...counted, asOfSeq };
        kept = { summary, computedAt: Date.now() };
        return summary;
      })().finally(() => {
        computing = undefined;
      });
      return computing;
    },
  };
}

const NODE_ROUTE = new RegExp(`^${API_PREFIX}/nodes/:([A-Za-z0-9_]+)`);

/**
 * The node a route names: the parameter right after `/nodes/` (`/nodes/:ref/power`), whatever it is
 * called, so a node route added later gets the scope check without asking for it.
 */
function nodeRefOf(request: FastifyRequest): string | undefined {
  const name = NODE_ROUTE.exec(request.routeOptions.url ?? "")?.[1];
  return name === undefined ? undefined : (request.params as Record<string, string>)[name];
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

/** `?q=worker&offset=100&limit=50`: the search and the page of `GET /nodes`. */
function nodePageQuery(query: Query): NodePageQuery {
  const search = first(query.q);
  const offset = first(query.offset);
  const limit = first(query.limit);
  return {
    ...(search !== undefined && search !== "" ? { search: search.slice(0, 100) } : {}),
    offset: offset === undefined ? 0 : integer("offset", offset, 0),
    ...(limit === undefined ? {} : { limit: integer("limit", limit, 0, MAX_NODE_PAGE) }),
  };
}

/** Every error as `{ error, message, problems? }` with the status http-status.ts gives its code. */
function sendError(reply: FastifyReply, error: unknown, request: FastifyRequest, logger: Logger): FastifyReply {
  const status = httpStatusOf(error);
  if (status !== undefined) {
    const coded = error as { code: string; message: string };
    if (error instanceof AccessError) reply.header("www-authenticate", error.challenge);
    else if (status === 401)
      reply.header(
        "www-authenticate",
        error instanceof CallbackRejectedError ? 'Bearer realm="centra-pxe-callback"' : 'Bearer realm="centra-pxe"',
      );
    return reply.code(status).send({
      error: coded.code,
      message: coded.message,
      ...(error instanceof ValidationError ? { problems: error.problems } : {}),
      ...(error instanceof CallbackRejectedError ? { reason: error.reason } : {}),
      ...(error instanceof AccessError ? error.details : {}),
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
