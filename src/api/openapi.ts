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
  const admin = [{ bearer: [] }];
  const changeResponses = {
    "400": error("bad input; `problems` names each field and why"),
    "401": error("no admin token, or not a valid one"),
    "403": error("the admin token was revoked"),
    "404": error("no such node"),
    "409": error(
      "the node's state does not allow it, a value belongs to another node, or the field is owned by the config file",
    ),
  };
  const action = (summary: string) => ({
    post: {
      summary,
      security: admin,
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
        "The node inventory and its lifecycle (discovered → ready → provisioning → provisioned; failed; retired). Every route, reads included, needs `Authorization: Bearer <token>` from `centra-pxe token create` (401 without, 403 revoked); the installer callback is authorised by its own token.",
    },
    servers: [{ url: "/api/v1" }],
    security: admin,
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", description: "admin token from `centra-pxe token create`" },
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
          summary: "list nodes",
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
          security: admin,
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
          parameters: [nodeRef],
          responses: { "200": { description: "device, persistent, efi, raw" }, "502": bmcFailure },
        },
        put: {
          summary: "set the next boot device and read it back; `mismatch` says what the BMC did not keep",
          security: admin,
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
          parameters: [nodeRef, ...eventQuery.slice(1)],
          responses: { "200": { description: "events, oldest first", content: eventPage } },
        },
      },
      "/nodes/{ref}/console": {
        get: {
          summary:
            "the node's serial console over LAN (IPMI SOL) as the server recorded it while the node provisioned, kept under stateDir/consoles (bounded; the newest output kept)",
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
          summary: "lifecycle events, oldest first, one page",
          parameters: eventQuery,
          responses: { "200": { description: "a page of events and its cursor", content: eventPage } },
        },
      },
      "/events/stream": {
        get: {
          summary: "live events as server-sent events; resume with Last-Event-ID or ?after=",
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
          parameters: [{ name: "name", in: "query", schema: { type: "string" } }],
          responses: { "200": { description: "images with a current flag" } },
        },
      },
      "/openapi.json": { get: { summary: "this document", responses: { "200": { description: "OpenAPI 3.1" } } } },
    },
  };
}
