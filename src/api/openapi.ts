import type { Role } from "../config/roles.js";
import { BEARER_SCHEME } from "../identity/access.js";
import { NODE_STATES } from "../lifecycle/lifecycle.js";

/**
 * The OpenAPI 3.1 document served at /api/v1/openapi.json. Written by hand, beside the routes in
 * plugin.ts; api.test.ts checks that every route there is described here.
 */
export function openApiDocument(): Record<string, unknown> {
  const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
  const json = (schema: unknown) => ({ "application/json": { schema } });
  const error = (description: string) => ({ description, content: json(ref("Error")) });
  const nodeRef = {
    name: "ref",
    in: "path",
    required: true,
    description: "node id, any of its MACs, or its hostname",
    schema: { type: "string" },
  };
  // Each operation's role (OpenAPI 3.1 lets a bearer requirement list role names): the API enforces
  // exactly this (src/identity/access.ts), and an operation without one is refused for everyone.
  const needs = (role: Role) => [{ [BEARER_SCHEME]: [role] }];
  const viewer = needs("viewer");
  const operator = needs("operator");
  const admin = needs("admin");
  const changeResponses = {
    "400": error("bad input; `problems` names each field and why"),
    "401": error("no credential, or not a valid one (expired, unknown); WWW-Authenticate says which"),
    "403": error("the credential's role is not enough (`requiredRole` names the one needed), or the token was revoked"),
    "404": error("no such node"),
    "409": error(
      "the node's state does not allow it, a value belongs to another node, or the field is owned by the config file",
    ),
  };
  const action = (summary: string) => ({
    post: {
      summary,
      security: operator,
      parameters: [nodeRef],
      responses: {
        "200": { description: "the node after the transition", content: json(ref("Node")) },
        ...changeResponses,
      },
    },
  });
  const eventQuery = [
    { name: "node", in: "query", schema: { type: "string" }, description: "node id, MAC or hostname" },
    {
      name: "kind",
      in: "query",
      schema: { type: "string" },
      description: "created, discovered, updated, transition, install-boot, callback-rejected, removed, …",
    },
    { name: "since", in: "query", schema: { type: "string", format: "date-time" } },
    {
      name: "after",
      in: "query",
      schema: { type: "integer", minimum: 0 },
      description: "a cursor: the page of events with a larger seq (pass the previous page's `next`)",
    },
    {
      name: "limit",
      in: "query",
      schema: { type: "integer", minimum: 1, maximum: 500 },
      description: "page size, at most 500 (the default); without after or since, the newest N",
    },
  ];
  const eventPage = json({
    type: "object",
    required: ["events", "next", "more"],
    properties: {
      events: { type: "array", items: ref("Event") },
      next: { type: "integer", description: "the cursor for the next page (?after=)" },
      more: { type: "boolean", description: "the page was full: there may be more after `next`" },
    },
  });
  const nodeFields = {
    macs: { type: "array", items: { type: "string", example: "52:54:00:12:34:56" }, minItems: 1 },
    mac: { type: "string", description: "shorthand for a one-element macs" },
    profile: { type: ["string", "null"] },
    hostname: { type: ["string", "null"] },
    ipAddress: {
      type: ["string", "null"],
      description: "fixed address: inside a DHCP subnet, outside the dynamic pool",
    },
    uuid: { type: ["string", "null"], description: "SMBIOS system UUID" },
    imageVersion: { type: ["string", "null"], description: "pin the profile's image to this version" },
    labels: { type: "object", additionalProperties: { type: "string" } },
  };
  return {
    openapi: "3.1.0",
    info: {
      title: "Centra PXE provisioning API",
      version: "1",
      description:
        "The node inventory and its lifecycle (discovered → ready → provisioning → provisioned; failed; retired). Every route, reads included, needs `Authorization: Bearer <token>`: a token from `centra-pxe token create`, or a JWT from the identity provider of `auth.oidc`. Each operation's `security` names the role it needs (viewer < operator < admin); 401 without a valid credential, 403 naming the role needed. A token with a label scope sees and changes only the nodes carrying those labels (others answer 404 as if absent). The installer callback is authorised by its own token.",
    },
    servers: [{ url: "/api/v1" }],
    components: {
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description:
            "a token from `centra-pxe token create`, or a JWT of the `auth.oidc` issuer; roles: viewer, operator, admin",
        },
        callbackToken: {
          type: "apiKey",
          in: "query",
          name: "token",
          description: "the single-use centra.token= from the installer's kernel command line",
        },
      },
      schemas: {
        Error: {
          type: "object",
          required: ["error", "message"],
          properties: {
            error: { type: "string" },
            message: { type: "string" },
            problems: {
              type: "array",
              items: { type: "object", properties: { field: { type: "string" }, message: { type: "string" } } },
            },
          },
        },
        Node: {
          type: "object",
          required: ["id", "macs", "labels", "state", "source", "stateChangedAt", "createdAt"],
          properties: {
            id: { type: "string" },
            ...nodeFields,
            serial: { type: "string" },
            firmware: { type: "string" },
            state: { type: "string", enum: [...NODE_STATES] },
            source: { type: "string", enum: ["config", "api", "discovered"] },
            provisioningId: { type: "string" },
            provisionDeadline: { type: "string", format: "date-time" },
            stateChangedAt: { type: "string", format: "date-time" },
            createdAt: { type: "string", format: "date-time" },
            lastSeenAt: { type: "string", format: "date-time" },
          },
        },
        ApiToken: {
          type: "object",
          required: ["id", "name", "role", "createdAt"],
          properties: {
            id: { type: "string" },
            name: { type: "string" },
            role: { type: "string", enum: ["viewer", "operator", "admin"] },
            scope: { type: "object", additionalProperties: { type: "string" } },
            createdAt: { type: "string", format: "date-time" },
            expiresAt: { type: "string", format: "date-time" },
            lastUsedAt: { type: "string", format: "date-time" },
            revokedAt: { type: "string", format: "date-time" },
          },
        },
        Actor: {
          type: "object",
          required: ["kind", "id"],
          properties: {
            kind: { type: "string", enum: ["token", "oidc", "local"] },
            id: { type: "string", description: "token id, JWT sub, local user" },
            name: { type: "string" },
            issuer: { type: "string", description: "the JWT's iss" },
          },
        },
        AuditRecord: {
          type: "object",
          required: ["seq", "at", "actor", "action", "summary", "address", "outcome", "status"],
          properties: {
            seq: { type: "integer" },
            at: { type: "string", format: "date-time" },
            actor: ref("Actor"),
            action: { type: "string", description: "the route as this document writes it, or the CLI command" },
            target: { type: "string" },
            summary: { type: "object", description: "the request's fields; secrets redacted" },
            address: { type: "string", description: "the caller's IP address, or `local`" },
            outcome: { type: "string", enum: ["success", "denied", "failed"] },
            status: { type: "integer" },
          },
        },
        NodeChanges: { type: "object", additionalProperties: false, properties: nodeFields },
        Event: {
          type: "object",
          properties: {
            seq: { type: "integer" },
            nodeId: { type: "string" },
            kind: { type: "string" },
            fromState: { type: "string", enum: [...NODE_STATES] },
            toState: { type: "string", enum: [...NODE_STATES] },
            at: { type: "string", format: "date-time" },
            details: { type: "object" },
          },
        },
      },
    },
    paths: {
      "/nodes": {
        get: {
          summary: "list nodes (a scoped caller: only those in its scope)",
          security: viewer,
          parameters: [
            { name: "state", in: "query", schema: { type: "string", enum: [...NODE_STATES] } },
            { name: "profile", in: "query", schema: { type: "string" } },
            {
              name: "label",
              in: "query",
              schema: { type: "array", items: { type: "string" } },
              description: "key=value, repeatable; all must match",
            },
          ],
          responses: {
            "200": {
              description: "nodes",
              content: json({ type: "object", properties: { nodes: { type: "array", items: ref("Node") } } }),
            },
            "400": error("bad filter"),
          },
        },
        post: {
          summary: "add a node (ready when it has a profile, else discovered)",
          security: admin,
          requestBody: { required: true, content: json(ref("NodeChanges")) },
          responses: {
            "200": {
              description:
                "the MAC was already discovered: that node is registered with these fields (its history kept)",
              content: json(ref("Node")),
            },
            "201": { description: "created", content: json(ref("Node")) },
            ...changeResponses,
          },
        },
      },
      "/nodes/{ref}": {
        get: {
          summary: "one node",
          security: viewer,
          parameters: [nodeRef],
          responses: { "200": { description: "the node", content: json(ref("Node")) }, "404": error("no such node") },
        },
        patch: {
          summary: "change a node; null clears a field; setting a profile makes a discovered node ready",
          security: admin,
          parameters: [nodeRef],
          requestBody: { required: true, content: json(ref("NodeChanges")) },
          responses: { "200": { description: "the node", content: json(ref("Node")) }, ...changeResponses },
        },
        delete: {
          summary: "remove a node (its events are kept)",
          security: admin,
          parameters: [nodeRef],
          responses: { "200": { description: "the removed node", content: json(ref("Node")) }, ...changeResponses },
        },
      },
      "/nodes/{ref}/provision": action("install the node on its next PXE boot (ready or failed nodes)"),
      "/nodes/{ref}/reprovision": action("install again (also a provisioned node, or restart a stuck attempt)"),
      "/nodes/{ref}/retire": action("never boot this node from the network again"),
      "/nodes/{ref}/reactivate": action("bring a retired node back (ready, or discovered without a profile)"),
      "/nodes/{ref}/macs": {
        post: {
          summary:
            "adopt: add a MAC to the node (the answer to an identity-conflict event; the network never adds one)",
          security: admin,
          parameters: [nodeRef],
          requestBody: {
            required: true,
            content: json({ type: "object", required: ["mac"], properties: { mac: { type: "string" } } }),
          },
          responses: {
            "200": {
              description: "the node with the MAC; a node only discovered under that MAC is removed",
              content: json(ref("Node")),
            },
            ...changeResponses,
          },
        },
      },
      "/nodes/{ref}/events": {
        get: {
          summary: "a node's events, one page",
          security: viewer,
          parameters: [nodeRef, ...eventQuery.slice(1)],
          responses: { "200": { description: "events, oldest first", content: eventPage } },
        },
      },
      "/nodes/callback": {
        post: {
          summary: "the installed system reports back; makes the node provisioned (or failed with status=failed)",
          security: [{ callbackToken: [] }],
          parameters: [
            {
              name: "token",
              in: "query",
              schema: { type: "string" },
              description: "or the form/JSON body, or Authorization: Bearer",
            },
            { name: "mac", in: "query", schema: { type: "string" }, description: "must be one of the node's MACs" },
            { name: "status", in: "query", schema: { type: "string", enum: ["ok", "failed"] } },
            { name: "message", in: "query", schema: { type: "string" } },
          ],
          responses: {
            "200": { description: "accepted" },
            "401": error("no token"),
            "403": error("unknown, used or expired token, or a MAC not the node's (which does not use the token up)"),
            "409": error("the node is no longer provisioning"),
          },
        },
        get: {
          summary: "the same, for busybox wget builds that cannot POST",
          security: [{ callbackToken: [] }],
          responses: { "200": { description: "accepted" } },
        },
      },
      "/events": {
        get: {
          summary: "lifecycle events, oldest first, one page (a scoped caller: its nodes' only)",
          security: viewer,
          parameters: eventQuery,
          responses: { "200": { description: "a page of events and its cursor", content: eventPage } },
        },
      },
      "/events/stream": {
        get: {
          summary: "live events as server-sent events; resume with Last-Event-ID or ?after=",
          security: viewer,
          parameters: eventQuery.slice(0, 4),
          responses: {
            "200": {
              description:
                "text/event-stream; each event's id is its seq, data its JSON; a replay is read a page at a time",
              content: { "text/event-stream": { schema: { type: "string" } } },
            },
            "503": error("api.maxEventStreams streams are open already"),
          },
        },
      },
      "/images": {
        get: {
          summary: "installed netboot images and versions",
          security: viewer,
          parameters: [{ name: "name", in: "query", schema: { type: "string" } }],
          responses: { "200": { description: "images with a current flag" } },
        },
      },
      "/openapi.json": {
        get: { summary: "this document", security: viewer, responses: { "200": { description: "OpenAPI 3.1" } } },
      },
      "/whoami": {
        get: {
          summary: "the caller: its role, label scope and identity (what a dashboard may offer it)",
          security: viewer,
          responses: {
            "200": {
              description: "the caller",
              content: json({
                type: "object",
                required: ["role", "actor"],
                properties: {
                  role: { type: "string", enum: ["viewer", "operator", "admin"] },
                  scope: { type: "object", additionalProperties: { type: "string" } },
                  actor: ref("Actor"),
                },
              }),
            },
          },
        },
      },
      "/tokens": {
        get: {
          summary: "API tokens (never their secrets or hashes)",
          security: admin,
          responses: {
            "200": {
              description: "every token, revoked and expired ones included",
              content: json({ type: "object", properties: { tokens: { type: "array", items: ref("ApiToken") } } }),
            },
          },
        },
        post: {
          summary: "create a token; the response is the only time its secret is shown",
          security: admin,
          requestBody: {
            required: true,
            content: json({
              type: "object",
              required: ["name"],
              additionalProperties: false,
              properties: {
                name: { type: "string", maxLength: 100 },
                role: { type: "string", enum: ["viewer", "operator", "admin"], default: "admin" },
                scope: {
                  description: "labels every reachable node must carry (viewer and operator tokens only)",
                  oneOf: [
                    { type: "string", example: "rack=a1,site=fra" },
                    { type: "array", items: { type: "string" } },
                    { type: "object", additionalProperties: { type: "string" } },
                  ],
                },
                expires: { type: "string", description: "a duration from now, e.g. 12h or 30d" },
              },
            }),
          },
          responses: {
            "201": {
              description: "the token and its secret",
              content: json({
                allOf: [ref("ApiToken"), { type: "object", properties: { token: { type: "string" } } }],
              }),
            },
            "400": error("bad name, role, scope or expiry; `problems` names each"),
          },
        },
      },
      "/tokens/{id}": {
        delete: {
          summary: "revoke a token at once",
          security: admin,
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
          responses: {
            "200": {
              description: "revoked",
              content: json({ type: "object", properties: { id: { type: "string" }, revokedAt: { type: "string" } } }),
            },
            "404": error("no such token"),
            "409": error("already revoked"),
          },
        },
      },
      "/audit": {
        get: {
          summary: "the audit trail: every change through the API or the CLI, newest first, one page",
          security: admin,
          parameters: [
            {
              name: "actor",
              in: "query",
              schema: { type: "string" },
              description: "token id or name, JWT sub or name, local user",
            },
            {
              name: "action",
              in: "query",
              schema: { type: "string" },
              description: "`POST /nodes/{ref}/provision`, `token create`; a trailing * matches a prefix",
            },
            { name: "target", in: "query", schema: { type: "string" }, description: "node ref, token id" },
            { name: "outcome", in: "query", schema: { type: "string", enum: ["success", "denied", "failed"] } },
            { name: "since", in: "query", schema: { type: "string", format: "date-time" } },
            { name: "until", in: "query", schema: { type: "string", format: "date-time" } },
            {
              name: "before",
              in: "query",
              schema: { type: "integer", minimum: 1 },
              description: "a cursor: records older than this seq (pass the previous page's `next`)",
            },
            {
              name: "limit",
              in: "query",
              schema: { type: "integer", minimum: 1, maximum: 500 },
              description: "default 100",
            },
          ],
          responses: {
            "200": {
              description: "a page of records and, when it was full, the cursor of the next",
              content: json({
                type: "object",
                required: ["records", "more"],
                properties: {
                  records: { type: "array", items: ref("AuditRecord") },
                  next: { type: "integer" },
                  more: { type: "boolean" },
                },
              }),
            },
            "400": error("bad filter"),
          },
        },
      },
    },
  };
}
