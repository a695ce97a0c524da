import type { Role } from "../config/roles.js";
import { IMAGE_ARCHES } from "../files/state-dir.js";
import { BEARER_SCHEME } from "../identity/access.js";
import { NODE_STATES } from "../lifecycle/lifecycle.js";
import { BOOT_VERDICTS } from "../timeline/attempt.js";

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
  /** A lifecycle action that also takes `{"power": true}` (issue 13). */
  const withPower = (operation: { post: Record<string, unknown> }) => ({
    post: {
      ...operation.post,
      requestBody: { required: false, content: powerBody },
      responses: {
        ...(operation.post.responses as Record<string, unknown>),
        "200": {
          description: "the node after the transition; with power: { node, steps }",
          content: json(ref("Node")),
        },
        "502": bmcFailure,
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
    bmc: {
      type: ["object", "null"],
      description:
        "the node's BMC (issue 13); the password is sealed with the server's key (a config node's is read from its passwordFile) and never returned. POST /nodes with a Redfish bmc and no macs reads the MACs, UUID and serial from the BMC",
      required: ["type", "address", "username"],
      properties: {
        type: { type: "string", enum: ["ipmi", "redfish"] },
        address: { type: "string" },
        port: { type: "integer" },
        username: { type: "string" },
        password: { type: "string", writeOnly: true },
        fingerprint: { type: "string", description: "Redfish: the certificate's sha256, pinned" },
        scheme: { type: "string", enum: ["https", "http"] },
        cipherSuite: { type: "integer", description: "IPMI: RMCP+ cipher suite (ipmitool -C)" },
      },
    },
  };
  const bmcFailure = error(
    "the BMC failed: `error` is BMC_UNREACHABLE, BMC_CREDENTIALS, BMC_UNSUPPORTED, BMC_TIMEOUT, BMC_CERTIFICATE or BMC_FAILED",
  );
  const powerStep = {
    type: "object",
    properties: {
      step: { type: "string", enum: ["boot-pxe", "provision", "power-cycle", "await-callback", "boot-disk"] },
      outcome: { type: "string", enum: ["ok", "failed"] },
      error: { type: "string" },
      message: { type: "string" },
      mismatch: { type: "string", description: "what the BMC did not keep of a boot-device request" },
    },
  };
  const powerBody = json({
    type: "object",
    properties: { power: { type: "boolean", description: "boot it now through its BMC (issue 13)" } },
  });
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
            bmc: {
              type: "object",
              description: "as set, without the password; `password` says how it is held",
              properties: { password: { type: "string", enum: ["file", "stored"] } },
            },
            power: {
              type: "object",
              description: "the power state as last polled (bmc.pollInterval)",
              properties: {
                state: { type: "string", enum: ["on", "off", "unknown"] },
                checkedAt: { type: "string", format: "date-time" },
                error: { type: "string" },
              },
            },
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
        BootAttempt: {
          type: "object",
          description:
            "One boot attempt of one machine (one MAC): what DHCP, TFTP, HTTP and the lifecycle saw, joined, and a verdict. Times are ISO 8601; each step's `at` is when it began and `ms` how long it took.",
          required: [
            "attempt",
            "mac",
            "startedAt",
            "updatedAt",
            "verdict",
            "reason",
            "final",
            "phases",
            "stepsDropped",
          ],
          properties: {
            attempt: { type: "integer", description: "unique on this server, increasing; /boots/{attempt}" },
            mac: { type: "string" },
            nodeId: { type: "string", description: "absent for a machine the inventory does not hold" },
            startedAt: { type: "string", format: "date-time" },
            updatedAt: { type: "string", format: "date-time", description: "the last news of it" },
            firmware: { type: "string", description: "bios, efi-x64, … (DHCP option 93)" },
            arch: { type: "integer", description: "DHCP option 93 code" },
            address: { type: "string", description: "the IPv4 address DHCP tied to it" },
            profile: { type: "string", description: "from the per-machine script's decision" },
            verdict: { type: "string", enum: [...BOOT_VERDICTS] },
            reason: { type: "string", description: "the verdict in words: what happened last, what is missing" },
            final: { type: "boolean", description: "false while waiting can still change the verdict" },
            phases: {
              type: "array",
              description: "for a picture: each phase from its first step's start to its last step's end",
              items: {
                type: "object",
                required: ["phase", "start", "end", "ms"],
                properties: {
                  phase: { type: "string", enum: ["dhcp", "tftp", "scripts", "kernel", "initrd", "install"] },
                  start: { type: "string", format: "date-time" },
                  end: { type: "string", format: "date-time" },
                  ms: { type: "integer" },
                },
              },
            },
            steps: {
              type: "array",
              description: "only on /boots/{attempt}; oldest first",
              items: ref("BootStep"),
            },
            stepsDropped: { type: "integer", description: "steps past timeline.stepsPerAttempt, not kept" },
          },
        },
        BootStep: {
          type: "object",
          required: ["source", "at"],
          description:
            "source dhcp: message, reply, address, userClass, bootClient, repeats, ignored. tftp: file, outcome (completed, aborted, failed, refused), bytes, size, ms, retransmissions, reason. http: kind (entry-script, machine-script, bootloader, kernel, initrd, image-file), path, scheme (http, https), method, status, bytes, size, ms, complete, decision { boot, profile, image, install, reason }. lifecycle: kind (install-boot, callback-succeeded, callback-failed, callback-rejected, timeout), message.",
          properties: {
            source: { type: "string", enum: ["dhcp", "tftp", "http", "lifecycle"] },
            at: { type: "string", format: "date-time" },
            ms: { type: "integer" },
            message: { type: "string" },
            reply: { type: "string" },
            address: { type: "string" },
            userClass: { type: "string" },
            bootClient: { type: "boolean" },
            repeats: { type: "integer" },
            ignored: { type: "string" },
            file: { type: "string" },
            outcome: { type: "string", enum: ["completed", "aborted", "failed", "refused"] },
            bytes: { type: "integer" },
            size: { type: "integer" },
            retransmissions: { type: "integer" },
            reason: { type: "string" },
            kind: { type: "string" },
            path: { type: "string" },
            scheme: { type: "string", enum: ["http", "https"] },
            method: { type: "string" },
            status: { type: "integer" },
            complete: { type: "boolean" },
            decision: {
              type: "object",
              properties: {
                boot: { type: "string", enum: ["image", "menu", "localdisk", "none", "unavailable"] },
                profile: { type: "string" },
                image: { type: "string" },
                install: { type: "boolean" },
                reason: { type: "string" },
              },
            },
          },
        },
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
            {
              name: "q",
              in: "query",
              schema: { type: "string", maxLength: 100 },
              description: "search: a case-insensitive part of a MAC (: or -), the hostname or the id",
            },
            { name: "offset", in: "query", schema: { type: "integer", minimum: 0 }, description: "skip this many" },
            {
              name: "limit",
              in: "query",
              schema: { type: "integer", minimum: 0, maximum: 1000 },
              description: "page size (at most 1000); absent: every match",
            },
          ],
          responses: {
            "200": {
              description: "nodes by creation order; `total` counts every match before offset and limit",
              content: json({
                type: "object",
                required: ["nodes", "total", "offset"],
                properties: {
                  nodes: { type: "array", items: ref("Node") },
                  total: { type: "integer" },
                  offset: { type: "integer" },
                  limit: { type: "integer" },
                },
              }),
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
      "/nodes/{ref}/provision": withPower(
        action(
          'install the node on its next PXE boot (ready or failed nodes); with {"power": true}: one-time network boot, power cycle, the disk after the callback, through its BMC',
        ),
      ),
      "/nodes/{ref}/reprovision": withPower(
        action('install again (also a provisioned node, or restart a stuck attempt); {"power": true} as for provision'),
      ),
      "/nodes/provision": {
        post: {
          summary: "provision by power every node the filter selects, bmc.concurrency at a time; each node's outcome",
          security: admin,
          parameters: [
            {
              name: "label",
              in: "query",
              schema: { type: "array", items: { type: "string" } },
              description: "key=value",
            },
            { name: "state", in: "query", schema: { type: "string", enum: [...NODE_STATES] } },
            { name: "profile", in: "query", schema: { type: "string" } },
          ],
          requestBody: {
            required: true,
            content: json({
              type: "object",
              required: ["power"],
              properties: { power: { const: true }, reprovision: { type: "boolean" } },
            }),
          },
          responses: {
            "200": {
              description: "one result per node; a dead BMC fails its own node only",
              content: json({
                type: "object",
                properties: {
                  results: {
                    type: "array",
                    items: {
                      type: "object",
                      properties: {
                        node: { type: "string" },
                        ok: { type: "boolean" },
                        steps: { type: "array", items: powerStep },
                        error: { type: "string" },
                        message: { type: "string" },
                      },
                    },
                  },
                },
              }),
            },
            "400": error("no filter, or not by power"),
          },
        },
      },
      "/nodes/{ref}/power": {
        get: {
          summary: "read the node's power state from its BMC now",
          security: viewer,
          parameters: [nodeRef],
          responses: {
            "200": {
              description: "power state",
              content: json({
                type: "object",
                properties: { node: { type: "string" }, state: { type: "string", enum: ["on", "off"] } },
              }),
            },
            "409": error("the node has no BMC"),
            "502": bmcFailure,
          },
        },
        post: {
          summary: "power the node on, off, cycle or reset it (hard, through its BMC); an event either way",
          security: operator,
          parameters: [nodeRef],
          requestBody: {
            required: true,
            content: json({
              type: "object",
              required: ["action"],
              properties: { action: { type: "string", enum: ["on", "off", "cycle", "reset"] } },
            }),
          },
          responses: { "200": { description: "done" }, ...changeResponses, "502": bmcFailure },
        },
      },
      "/nodes/{ref}/bootdev": {
        get: {
          summary: "the boot override the node's BMC holds",
          security: viewer,
          parameters: [nodeRef],
          responses: { "200": { description: "device, persistent, efi, raw" }, "502": bmcFailure },
        },
        put: {
          summary: "set the next boot device and read it back; `mismatch` says what the BMC did not keep",
          security: operator,
          parameters: [nodeRef],
          requestBody: {
            required: true,
            content: json({
              type: "object",
              required: ["device"],
              properties: {
                device: { type: "string", enum: ["pxe", "disk", "http"] },
                persistent: { type: "boolean" },
                efi: { type: "boolean", description: "UEFI (true) or legacy (false); left out: the BMC's mode" },
              },
            }),
          },
          responses: {
            "200": { description: "requested, readBack, mismatch?" },
            ...changeResponses,
            "502": bmcFailure,
          },
        },
      },
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
      "/nodes/{ref}/boots": {
        get: {
          summary:
            "a machine's boot attempts, newest first, without their steps; ref may also be a MAC the inventory does not hold",
          security: viewer,
          parameters: [nodeRef],
          responses: {
            "200": {
              description: "at most timeline.attemptsPerMachine per MAC",
              content: json({
                type: "object",
                required: ["boots"],
                properties: { boots: { type: "array", items: ref("BootAttempt") } },
              }),
            },
            "404": error("no such node, and ref is not a MAC"),
          },
        },
      },
      "/nodes/{ref}/boots/{attempt}": {
        get: {
          summary: "one boot attempt with its steps",
          security: viewer,
          parameters: [
            nodeRef,
            { name: "attempt", in: "path", required: true, schema: { type: "integer", minimum: 1 } },
          ],
          responses: {
            "200": { description: "the attempt", content: json(ref("BootAttempt")) },
            "404": error("no such node, or no such attempt of it (older ones are dropped past the caps)"),
          },
        },
      },
      "/boots": {
        get: {
          summary: "recent boot attempts of every machine, newest news first, without their steps",
          security: viewer,
          parameters: [
            { name: "since", in: "query", schema: { type: "string", format: "date-time" } },
            { name: "verdict", in: "query", schema: { type: "string", enum: [...BOOT_VERDICTS] } },
            { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 500, default: 100 } },
          ],
          responses: {
            "200": {
              description: "attempts",
              content: json({
                type: "object",
                required: ["boots"],
                properties: { boots: { type: "array", items: ref("BootAttempt") } },
              }),
            },
            "400": error("bad since or limit"),
          },
        },
      },
      "/alerts": {
        get: {
          security: viewer,
          summary: "alerts firing now (failed provisioning, boot loops, repeated aborted transfers, a part down)",
          responses: {
            "200": {
              description: "the same alerts webhooks and Alertmanager are sent",
              content: json({
                type: "object",
                required: ["alerts"],
                properties: {
                  alerts: {
                    type: "array",
                    items: {
                      type: "object",
                      required: ["key", "labels", "annotations", "startsAt"],
                      properties: {
                        key: { type: "string" },
                        labels: {
                          type: "object",
                          description:
                            "alertname (CentraPxeProvisioningFailed, CentraPxeBootLoop, CentraPxeAbortedTransfers, CentraPxePartDown), severity, and node, hostname, mac, profile, reason or part",
                          additionalProperties: { type: "string" },
                        },
                        annotations: {
                          type: "object",
                          properties: { summary: { type: "string" }, description: { type: "string" } },
                        },
                        startsAt: { type: "string", format: "date-time" },
                      },
                    },
                  },
                },
              }),
            },
          },
        },
      },
      "/nodes/{ref}/console": {
        get: {
          summary:
            "the node's serial console over LAN (IPMI SOL) as the server recorded it while the node provisioned, kept under stateDir/consoles (bounded; the newest output kept)",
          security: operator,
          parameters: [nodeRef],
          responses: {
            "200": {
              description: "the console bytes as the machine sent them",
              content: { "text/plain": { schema: { type: "string" } } },
            },
            "404": error("no such node, or no console recorded for it (no IPMI BMC, or never provisioned since)"),
          },
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
          summary: "installed netboot images and versions, each with its architecture (`arch`: x86_64, arm64, arm32)",
          security: viewer,
          parameters: [{ name: "name", in: "query", schema: { type: "string" } }],
          responses: { "200": { description: "images with their arch and a current flag (current is per arch)" } },
        },
      },
      "/images/{name}/current": {
        put: {
          summary: "switch an image's current version (images use; the rollback)",
          security: admin,
          parameters: [{ name: "name", in: "path", required: true, schema: { type: "string" } }],
          requestBody: {
            required: true,
            content: json({
              type: "object",
              required: ["version"],
              properties: {
                version: { type: "string" },
                arch: {
                  type: "string",
                  enum: [...IMAGE_ARCHES],
                  description: "the build line to switch (default x86_64); each architecture has its own current",
                },
              },
            }),
          },
          responses: {
            "200": { description: "the image's versions with the current flag" },
            "400": error("no version, or not a valid version name or arch"),
            "401": error("no credential, or not a valid one"),
            "403": error("not an admin"),
            "404": error("no such image version on disk"),
          },
        },
      },
      "/fleet": {
        get: {
          summary:
            "the fleet overview: node counts by state and profile, the attempts under way (a scoped caller: its nodes)",
          security: viewer,
          responses: {
            "200": {
              description: "counts; `provisioning` lists at most 200 nodes, the longest-running first",
              content: json({
                type: "object",
                properties: {
                  total: { type: "integer" },
                  byState: { type: "object", additionalProperties: { type: "integer" } },
                  byProfile: {
                    type: "object",
                    additionalProperties: { type: "integer" },
                    description: "nodes without a profile under the empty key",
                  },
                  provisioning: { type: "array", items: ref("Node") },
                  provisioningTotal: { type: "integer" },
                  asOfSeq: {
                    type: "integer",
                    description:
                      "the last event the counts include (kept between events, recomputed at most once a second)",
                  },
                },
              }),
            },
          },
        },
      },
      "/leases": {
        get: {
          summary: "DHCP leases (active ones unless all=1; a scoped caller: its nodes' only)",
          security: viewer,
          parameters: [{ name: "all", in: "query", schema: { type: "string", enum: ["1", "true"] } }],
          responses: {
            "200": {
              description: "leases with status active, expired, released or declined (conflict); none when DHCP is off",
            },
          },
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
