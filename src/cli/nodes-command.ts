import type { BootAttemptView } from "../timeline/attempt.js";
import { formatAttempt, formatBoots } from "../timeline/format.js";
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { CentraError } from "../errors.js";
import type { NodeEvent, NodeRecord } from "../store/store.js";
import { explainFetchFailure, locateServer } from "./common.js";
import { registerConsoleCommand } from "./console-command.js";
import { table } from "./token-command.js";

/** The order the server is looked for, said once for every client command. */
export const URL_HELP =
  "the server (default: $CENTRA_PXE_URL, else http://serverAddress[:http.port] of --config, else http://127.0.0.1)";

/**
 * `centra-pxe nodes …`: the inventory and its lifecycle through the running server's API, so a
 * change takes effect at once (reservation, boot script) and lands in the event log with the
 * token that made it.
 */

export interface ApiClientOptions {
  url?: string;
  token?: string;
  config?: string;
}

/** A failed API call, with what the server said (every bad field on its own line). */
export class ApiCallError extends CentraError {
  readonly exitCode = 1;
  constructor(message: string) {
    super("API_CALL", message);
  }
}

export class ApiClient {
  readonly base: string;
  /** Which setting the URL came from (--url, CENTRA_PXE_URL, a config file), for the messages. */
  private readonly from: string;
  private readonly token: string | undefined;

  constructor(options: ApiClientOptions, env: NodeJS.ProcessEnv = process.env) {
    const server = locateServer(options, env);
    this.base = server.base;
    this.from = server.from;
    this.token = options.token ?? (env.CENTRA_PXE_TOKEN || undefined);
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    // Every API route needs the token, reads included (the inventory is not for strangers).
    this.requireToken();
    const url = `${this.base}/api/v1${path}`;
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: {
          accept: "application/json",
          ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      throw new ApiCallError(explainFetchFailure(error, this.base, this.from));
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!response.ok) {
      const failure = (parsed ?? {}) as { message?: string; problems?: { field: string; message: string }[] };
      const lines = failure.problems?.length ? failure.problems.map((p) => `  ${p.field}: ${p.message}`) : [];
      throw new ApiCallError(
        [`${method} ${path}: HTTP ${response.status}: ${failure.message ?? text.slice(0, 200)}`, ...lines].join("\n"),
      );
    }
    return parsed as T;
  }

  /** A text resource under `/api/v1` (a recorded console), as the server sent it. */
  async text(path: string): Promise<string> {
    this.requireToken();
    let response: Response;
    try {
      response = await fetch(`${this.base}/api/v1${path}`, {
        headers: this.token ? { authorization: `Bearer ${this.token}` } : {},
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      throw new ApiCallError(explainFetchFailure(error, this.base, this.from));
    }
    const text = await response.text();
    if (!response.ok) {
      let message = text.slice(0, 200);
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? message;
      } catch {
        /* not JSON */
      }
      throw new ApiCallError(`GET ${path}: HTTP ${response.status}: ${message}`);
    }
    return text;
  }

  private requireToken(): void {
    if (!this.token) {
      throw new ApiCallError(
        "this request needs an admin token: pass --token or set CENTRA_PXE_TOKEN (create one with `centra-pxe token create`)",
      );
    }
  }

  /** Follow `/api/v1<path>` as server-sent events. */
  async stream(path: string, onEvent: (event: NodeEvent) => void): Promise<void> {
    this.requireToken();
    let response: Response;
    try {
      response = await fetch(`${this.base}/api/v1${path}`, {
        headers: { accept: "text/event-stream", ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) },
      });
    } catch (error) {
      throw new ApiCallError(explainFetchFailure(error, this.base, this.from));
    }
    if (!response.ok || !response.body) throw new ApiCallError(`GET ${path}: HTTP ${response.status}`);
    await readEventStream(response.body, onEvent);
  }
}

const enc = encodeURIComponent;

/** Read a server-sent event stream until the server closes it or the process is interrupted. */
async function readEventStream(body: ReadableStream<Uint8Array>, onEvent: (event: NodeEvent) => void): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data: "))
        .map((line) => line.slice(6))
        .join("\n");
      if (data) onEvent(JSON.parse(data) as NodeEvent);
    }
  }
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function labelsOf(pairs: string[] | undefined): Record<string, string> | undefined {
  if (!pairs?.length) return undefined;
  const labels: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new ApiCallError(`--label ${JSON.stringify(pair)}: expected key=value`);
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}

/** The `--bmc-…` flags of `nodes add` and `nodes set`. */
interface BmcFlags {
  bmcType?: string;
  bmcAddress?: string;
  bmcPort?: string;
  bmcUser?: string;
  bmcPasswordFile?: string;
  bmcFingerprint?: string;
  bmcScheme?: string;
  bmcCipherSuite?: string;
}

function bmcOptions(command: Command): Command {
  return command
    .option("--bmc-type <type>", "the node's BMC: ipmi (IPMI over LAN) or redfish")
    .option("--bmc-address <host>", "BMC host name or address")
    .option("--bmc-port <port>", "BMC port (default 623 ipmi, 443 redfish)")
    .option("--bmc-user <name>", "BMC username")
    .option(
      "--bmc-password-file <file>",
      "a local file whose first line is the BMC password; sent once to the server, which keeps it sealed (never on the command line)",
    )
    .option(
      "--bmc-fingerprint <sha256>",
      "Redfish: the BMC certificate's sha256 fingerprint (self-signed certificates)",
    )
    .option("--bmc-scheme <scheme>", "Redfish: https (default) or http (lab BMCs)")
    .option("--bmc-cipher-suite <n>", "IPMI: the RMCP+ cipher suite (ipmitool -C)");
}

/** The `bmc` object of a node body from the flags, or undefined when none was given. */
export function bmcBody(flags: BmcFlags): Record<string, unknown> | undefined {
  if (Object.entries(flags).every(([key, value]) => !key.startsWith("bmc") || value === undefined)) return undefined;
  const bmc: Record<string, unknown> = {};
  if (flags.bmcType !== undefined) bmc.type = flags.bmcType;
  if (flags.bmcAddress !== undefined) bmc.address = flags.bmcAddress;
  if (flags.bmcPort !== undefined) bmc.port = Number(flags.bmcPort);
  if (flags.bmcUser !== undefined) bmc.username = flags.bmcUser;
  if (flags.bmcPasswordFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(flags.bmcPasswordFile, "utf8");
    } catch (error) {
      throw new ApiCallError(`--bmc-password-file ${flags.bmcPasswordFile}: cannot read: ${(error as Error).message}`);
    }
    // The first line, as ipmitool reads a password file (an editor's trailing newline is not part of it).
    bmc.password = text.split(/\r?\n/)[0] ?? "";
  }
  if (flags.bmcFingerprint !== undefined) bmc.fingerprint = flags.bmcFingerprint;
  if (flags.bmcScheme !== undefined) bmc.scheme = flags.bmcScheme;
  if (flags.bmcCipherSuite !== undefined) bmc.cipherSuite = Number(flags.bmcCipherSuite);
  return bmc;
}

function print(value: unknown, json: boolean | undefined, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : human());
}

export function formatNodes(nodes: NodeRecord[]): string {
  if (nodes.length === 0) return "no nodes\n";
  return table([
    ["ID", "STATE", "PROFILE", "HOSTNAME", "ADDRESS", "MACS", "LAST SEEN"],
    ...nodes.map((n) => [
      n.id,
      n.state,
      n.profile ?? "-",
      n.hostname ?? "-",
      n.ipAddress ?? "-",
      n.macs.join(","),
      n.lastSeenAt ?? "-",
    ]),
  ]);
}

export function formatEvent(e: NodeEvent): string {
  const move = e.toState ? ` ${e.fromState ?? ""}→${e.toState}` : "";
  const by = typeof e.details.by === "string" ? ` by ${e.details.by}` : "";
  const action = typeof e.details.action === "string" ? ` (${e.details.action})` : "";
  return `${e.at}  ${e.nodeId}  ${e.kind}${move}${action}${by}\n`;
}

/** A node as the API shows it: its BMC without secrets, its power as last polled. */
type NodeView = NodeRecord & { power?: { state: string; checkedAt: string; error?: string }; bmc?: unknown };

function bmcLine(node: NodeView): string | undefined {
  const bmc = node.bmc as { type?: string; address?: string; port?: number; username?: string } | undefined;
  if (!bmc) return undefined;
  return `${bmc.type} ${bmc.username}@${bmc.address}${bmc.port ? `:${bmc.port}` : ""}`;
}

function powerLine(node: NodeView): string | undefined {
  const power = node.power;
  if (!power) return undefined;
  return `${power.state} (checked ${power.checkedAt}${power.error ? `, ${power.error}` : ""})`;
}

export function formatNode(node: NodeView, events: NodeEvent[]): string {
  const field = (label: string, value: string | undefined) =>
    value === undefined ? "" : `${label.padEnd(15)} ${value}\n`;
  const labels = Object.entries(node.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  return (
    field("id", node.id) +
    field("state", `${node.state} (since ${node.stateChangedAt})`) +
    field("macs", node.macs.join(", ")) +
    field("profile", node.profile) +
    field("hostname", node.hostname) +
    field("address", node.ipAddress) +
    field("image version", node.imageVersion) +
    field("labels", labels || undefined) +
    field("uuid", node.uuid) +
    field("serial", node.serial) +
    field("firmware", node.firmware) +
    field("bmc", bmcLine(node)) +
    field("power", powerLine(node)) +
    field("source", node.source) +
    field("deadline", node.provisionDeadline) +
    field("last seen", node.lastSeenAt) +
    (events.length
      ? `events:\n${events.map((e) => `  ${formatEvent(e).replace(`  ${e.nodeId}  `, "  ")}`).join("")}`
      : "")
  );
}

export function registerNodesCommands(program: Command): void {
  const nodes = program
    .command("nodes")
    .description("the node inventory and its lifecycle, through the running server's API");

  const client = (command: Command) => {
    const options = command.opts<ApiClientOptions>();
    return new ApiClient({
      ...(options.url !== undefined ? { url: options.url } : {}),
      ...(options.token ? { token: options.token } : {}),
      ...(options.config !== undefined ? { config: options.config } : {}),
    });
  };
  const sub = (spec: string, description: string) =>
    nodes
      .command(spec)
      .description(description)
      .option("--url <url>", URL_HELP)
      .option("--token <token>", "admin token (default: $CENTRA_PXE_TOKEN)")
      .option("-c, --config <file>", "config file: the server is http://serverAddress[:http.port] (when no --url)")
      .option("--json", "print JSON");

  sub("list", "list nodes")
    .option("--state <state>", "only nodes in this state")
    .option("--profile <profile>", "only nodes with this profile")
    .option("--label <key=value>", "only nodes with this label (repeatable)", collect)
    .action(
      async (options: { state?: string; profile?: string; label?: string[]; json?: boolean }, command: Command) => {
        const query = new URLSearchParams();
        if (options.state) query.set("state", options.state);
        if (options.profile) query.set("profile", options.profile);
        for (const label of options.label ?? []) query.append("label", label);
        const result = await client(command).call<{ nodes: NodeRecord[] }>(
          "GET",
          `/nodes${query.size ? `?${query}` : ""}`,
        );
        print(result.nodes, options.json, () => formatNodes(result.nodes));
      },
    );

  bmcOptions(
    sub(
      "add [mac...]",
      "add a machine by its MAC(s); with --profile it is ready to provision; with a Redfish --bmc-… and no MAC, its MACs, UUID and serial are read from the BMC",
    ),
  )
    .option("--profile <profile>", "a profile of the config")
    .option("--hostname <name>", "hostname (DHCP option 12, centra.hostname=)")
    .option("--ip <address>", "fixed address, outside the dynamic pool")
    .option("--uuid <uuid>", "SMBIOS system UUID")
    .option("--image-version <version>", "pin the profile's image version")
    .option("--label <key=value>", "a label (repeatable)", collect)
    .action(
      async (
        macs: string[],
        options: {
          profile?: string;
          hostname?: string;
          ip?: string;
          uuid?: string;
          imageVersion?: string;
          label?: string[];
          json?: boolean;
        } & BmcFlags,
        command: Command,
      ) => {
        const bmc = bmcBody(options);
        if (macs.length === 0 && bmc === undefined)
          throw new ApiCallError(
            "give the machine's MAC(s), or its BMC (--bmc-type redfish --bmc-address …) to read them from",
          );
        const body = {
          ...(macs.length ? { macs } : {}),
          ...(bmc !== undefined ? { bmc } : {}),
          ...(options.profile !== undefined ? { profile: options.profile } : {}),
          ...(options.hostname !== undefined ? { hostname: options.hostname } : {}),
          ...(options.ip !== undefined ? { ipAddress: options.ip } : {}),
          ...(options.uuid !== undefined ? { uuid: options.uuid } : {}),
          ...(options.imageVersion !== undefined ? { imageVersion: options.imageVersion } : {}),
          ...(options.label ? { labels: labelsOf(options.label) } : {}),
        };
        const node = await client(command).call<NodeRecord>("POST", "/nodes", body);
        print(node, options.json, () => `added ${node.id} (${node.state})\n`);
      },
    );

  bmcOptions(sub("set <node>", "change a node (id, MAC or hostname); use --clear to remove a field"))
    .option("--profile <profile>", "a profile of the config (a discovered node becomes ready)")
    .option("--hostname <name>", "hostname")
    .option("--ip <address>", "fixed address")
    .option("--uuid <uuid>", "SMBIOS system UUID")
    .option("--image-version <version>", "pin the profile's image version")
    .option("--label <key=value>", "replace the labels with these (repeatable)", collect)
    .option("--clear <field>", "clear profile, hostname, ipAddress, uuid, imageVersion or bmc (repeatable)", collect)
    .action(
      async (
        ref: string,
        options: {
          profile?: string;
          hostname?: string;
          ip?: string;
          uuid?: string;
          imageVersion?: string;
          label?: string[];
          clear?: string[];
          json?: boolean;
        } & BmcFlags,
        command: Command,
      ) => {
        const body: Record<string, unknown> = {};
        const bmc = bmcBody(options);
        if (bmc !== undefined) body.bmc = bmc;
        for (const field of options.clear ?? []) body[field] = null;
        if (options.profile !== undefined) body.profile = options.profile;
        if (options.hostname !== undefined) body.hostname = options.hostname;
        if (options.ip !== undefined) body.ipAddress = options.ip;
        if (options.uuid !== undefined) body.uuid = options.uuid;
        if (options.imageVersion !== undefined) body.imageVersion = options.imageVersion;
        if (options.label) body.labels = labelsOf(options.label);
        const node = await client(command).call<NodeRecord>("PATCH", `/nodes/${enc(ref)}`, body);
        print(node, options.json, () => `updated ${node.id} (${node.state})\n`);
      },
    );

  sub("show <node>", "one node (id, MAC or hostname) and its recent events").action(
    async (ref: string, options: { json?: boolean }, command: Command) => {
      const api = client(command);
      const node = await api.call<NodeView>("GET", `/nodes/${enc(ref)}`);
      const { events } = await api.call<{ events: NodeEvent[] }>("GET", `/nodes/${enc(node.id)}/events?limit=20`);
      print({ ...node, events }, options.json, () => formatNode(node, events));
    },
  );

  sub("remove <node>", "remove a node from the inventory (its events are kept)").action(
    async (ref: string, options: { json?: boolean }, command: Command) => {
      const node = await client(command).call<NodeRecord>("DELETE", `/nodes/${enc(ref)}`);
      print(node, options.json, () => `removed ${node.id}\n`);
    },
  );

  // The answer to an identity-conflict event: the network never adds a MAC to a node, an admin does.
  sub(
    "adopt <node> <mac>",
    "add a MAC to a node (id, MAC or hostname), e.g. after an identity-conflict event: a new NIC, another port",
  ).action(async (ref: string, mac: string, options: { json?: boolean }, command: Command) => {
    const node = await client(command).call<NodeRecord>("POST", `/nodes/${enc(ref)}/macs`, { mac });
    print(node, options.json, () => `${node.id} now has ${node.macs.join(", ")}\n`);
  });

  registerConsoleCommand(sub, client);

  sub("events [node]", "lifecycle events, oldest first; --follow keeps printing new ones as they happen")
    .option("--kind <kind>", "only events of this kind (transition, discovered, install-boot, …)")
    .option("--limit <n>", "the newest n", "50")
    .option("-f, --follow", "stay connected and print events as they happen (server-sent events)")
    .action(
      async (
        ref: string | undefined,
        options: { kind?: string; limit: string; follow?: boolean; json?: boolean },
        command: Command,
      ) => {
        const api = client(command);
        const query = new URLSearchParams();
        if (ref !== undefined) query.set("node", ref);
        if (options.kind) query.set("kind", options.kind);
        const { events } = await api.call<{ events: NodeEvent[] }>(
          "GET",
          `/events?${query}&limit=${enc(options.limit)}`,
        );
        const show = (event: NodeEvent) =>
          process.stdout.write(options.json ? `${JSON.stringify(event)}\n` : formatEvent(event));
        events.forEach(show);
        if (!options.follow) return;
        const after = events.at(-1)?.seq ?? 0;
        await api.stream(`/events/stream?${query}&after=${after}`, show);
      },
    );

  sub(
    "boots <node> [attempt]",
    "a machine's boot attempts, newest first, with their verdict (node id, MAC or hostname; a MAC the inventory does not hold too); with an attempt number, its every step",
  ).action(async (ref: string, attempt: string | undefined, options: { json?: boolean }, command: Command) => {
    const api = client(command);
    if (attempt === undefined) {
      const { boots } = await api.call<{ boots: BootAttemptView[] }>("GET", `/nodes/${enc(ref)}/boots`);
      print(boots, options.json, () => formatBoots(boots));
    } else {
      const found = await api.call<BootAttemptView>("GET", `/nodes/${enc(ref)}/boots/${enc(attempt)}`);
      print(found, options.json, () => formatAttempt(found));
    }
  });

  const lifecycle = (name: string, path: string, description: string) =>
    sub(`${name} <node>`, description).action(
      async (ref: string, options: { json?: boolean; reprovision?: boolean }, command: Command) => {
        const action = options.reprovision ? "reprovision" : path;
        const node = await client(command).call<NodeRecord>("POST", `/nodes/${enc(ref)}/${action}`);
        print(
          node,
          options.json,
          () =>
            `${node.id} is ${node.state}${node.provisionDeadline ? ` (callback expected by ${node.provisionDeadline})` : ""}\n`,
        );
      },
    );

  sub(
    "provision [node]",
    "install the node on its next PXE boot; --power: set a one-time network boot and power-cycle it through its BMC; --label with --power: every node so labelled",
  )
    .option("--reprovision", "install again even if it is provisioned")
    .option("--power", "boot it now through its BMC (one-time PXE, power cycle; the disk again after the callback)")
    .option("--label <key=value>", "with --power and no node: every node with this label (repeatable)", collect)
    .option("--state <state>", "with --power and no node: only nodes in this state")
    .action(
      async (
        ref: string | undefined,
        options: { reprovision?: boolean; power?: boolean; label?: string[]; state?: string; json?: boolean },
        command: Command,
      ) => {
        const api = client(command);
        const action = options.reprovision ? "reprovision" : "provision";
        if (ref === undefined) {
          if (!options.power || (!options.label?.length && !options.state))
            throw new ApiCallError("give a node, or --power with --label key=value (and/or --state) for many");
          const query = new URLSearchParams();
          for (const label of options.label ?? []) query.append("label", label);
          if (options.state) query.set("state", options.state);
          const bulk = await api.call<{ results: { node: string; ok: boolean; error?: string; message?: string }[] }>(
            "POST",
            `/nodes/provision?${query}`,
            { power: true, reprovision: options.reprovision === true },
          );
          print(bulk, options.json, () =>
            bulk.results.length === 0
              ? "no node matches\n"
              : bulk.results
                  .map(
                    (r) =>
                      `${r.node}  ${r.ok ? "power-cycled into its network boot" : `FAILED ${r.error}: ${r.message}`}\n`,
                  )
                  .join(""),
          );
          if (bulk.results.some((r) => !r.ok)) process.exitCode = 1;
          return;
        }
        if (options.power) {
          const result = await api.call<{
            node: NodeRecord;
            steps: { step: string; outcome: string; mismatch?: string }[];
          }>("POST", `/nodes/${enc(ref)}/${action}`, { power: true });
          print(result, options.json, () =>
            [
              ...result.steps.map((s) => `${s.step}: ${s.outcome}${s.mismatch ? ` (warning: ${s.mismatch})` : ""}\n`),
              `${result.node.id} is ${result.node.state}; the disk becomes its boot device after the callback (nodes events ${result.node.id} -f)\n`,
            ].join(""),
          );
          return;
        }
        const node = await api.call<NodeRecord>("POST", `/nodes/${enc(ref)}/${action}`);
        print(
          node,
          options.json,
          () =>
            `${node.id} is ${node.state}${node.provisionDeadline ? ` (callback expected by ${node.provisionDeadline})` : ""}\n`,
        );
      },
    );

  sub("power <node> <action>", "BMC power: status, on, off, cycle or reset").action(
    async (ref: string, action: string, options: { json?: boolean }, command: Command) => {
      const api = client(command);
      if (action === "status") {
        const status = await api.call<{ node: string; state: string }>("GET", `/nodes/${enc(ref)}/power`);
        print(status, options.json, () => `${status.node} power ${status.state}\n`);
        return;
      }
      if (!["on", "off", "cycle", "reset"].includes(action))
        throw new ApiCallError(`power ${action}: expected status, on, off, cycle or reset`);
      const result = await api.call<{ node: string }>("POST", `/nodes/${enc(ref)}/power`, { action });
      print(result, options.json, () => `${result.node} power ${action}: done\n`);
    },
  );

  sub("bootdev <node> <device>", "BMC boot device for the next boot: pxe, disk or http (UEFI HTTP, Redfish)")
    .option("--persistent", "every boot, not only the next")
    .option("--efi", "UEFI mode (IPMI efiboot, Redfish UEFI)")
    .option("--legacy", "legacy BIOS mode")
    .action(
      async (
        ref: string,
        device: string,
        options: { persistent?: boolean; efi?: boolean; legacy?: boolean; json?: boolean },
        command: Command,
      ) => {
        if (options.efi && options.legacy) throw new ApiCallError("--efi and --legacy exclude each other");
        const body: Record<string, unknown> = { device, persistent: options.persistent === true };
        if (options.efi) body.efi = true;
        if (options.legacy) body.efi = false;
        const result = await client(command).call<{ readBack: { raw: string }; mismatch?: string }>(
          "PUT",
          `/nodes/${enc(ref)}/bootdev`,
          body,
        );
        // A mismatch is a warning, not a failure: the BMC took the request and kept part of it.
        if (result.mismatch) process.stderr.write(`warning: ${result.mismatch}\n`);
        print(result, options.json, () => `boot device ${device} set (${result.readBack.raw})\n`);
      },
    );
  lifecycle("reprovision", "reprovision", "install a provisioned or failed node again on its next PXE boot");
  lifecycle("retire", "retire", "never boot the node from the network again");
  lifecycle("reactivate", "reactivate", "bring a retired node back");
}
