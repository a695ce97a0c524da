import { basename } from "node:path";
import { formatIpv4, inSubnet, normalizeMac, parseIpv4, prefixLength } from "../config/primitives.js";
import { type MacChoice, readBootScript, readMacMappings, type ScriptReading } from "./boot-script.js";
import { describeStatement, parseDhcpdConf, type Statement, wordsOf } from "./dhcpd-conf.js";

/**
 * `centra-pxe import`: the ISC stack's files (dhcpd.conf, the seed's boot.ipxe, mac-mappings.txt)
 * → our YAML config (PRODUCT.md §2). Pure: texts and the host's addresses in, YAML and findings
 * out. Whatever has no equivalent is a finding with its FILE:LINE and why, on stderr and as a
 * comment in the YAML; nothing is dropped silently.
 */

export interface ImportSource {
  file: string;
  text: string;
}

/** An IPv4 address of this host (os.networkInterfaces), to find the interface facing the subnet. */
export interface HostAddress {
  name: string;
  address: string;
  netmask: string;
}

export interface ImportRequest {
  dhcpd: ImportSource;
  ipxe?: ImportSource;
  mappings?: ImportSource;
  interfaces: readonly HostAddress[];
  /** The interface to write, when the operator names it (`--interface`); else found from `interfaces`. */
  interfaceName?: string;
}

export interface Finding {
  /** `FILE:LINE` (basename of the file). */
  where: string;
  statement: string;
  reason: string;
}

export interface ImportResult {
  yaml: string;
  /** Statements left out: their meaning is lost (exit status 2). */
  untranslated: Finding[];
  /** Statements centra-pxe does by itself, so nothing needs writing (listed for review only). */
  covered: Finding[];
  /** What the operator should check: placeholders, choices made between sources. */
  notes: Finding[];
}

/** The seed's profiles, which the config has by default (src/config/schema.ts SEED_PROFILES). */
const SEED_PROFILE_NAMES = ["control-plane", "worker", "all-in-one"];
const PROFILE_NAME = /^[a-z0-9][a-z0-9-]*$/;
const HOSTNAME =
  /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

const DEFAULT_LEASE_SECONDS = 3600;
/** `boot.menuTimeout`'s default (PRODUCT.md §2). */
const DEFAULT_MENU_TIMEOUT_MS = 10_000;

/** Host blocks the exporter names after the MAC because the node has no hostname (export.ts). */
export const UNNAMED_HOST_PREFIX = "mac-";

/** Statements that need no translation: centra-pxe does the same by itself. */
const COVERED: Record<string, string> = {
  authoritative: "centra-pxe in dhcp.mode server answers for its subnets and NAKs foreign addresses",
  "log-facility": "centra-pxe logs JSON lines to stdout (the journal under systemd)",
  filename: "centra-pxe hands each firmware its bootloader and iPXE its script itself (options 93, 77; PRODUCT.md §3)",
  "server-name": "centra-pxe names itself (siaddr/option 66) as the boot server",
  "use-host-decl-names": "host names come from each host block (hostname), as this switch asks",
};

/** Statements with no equivalent, and why; anything not listed gets a generic reason. */
const UNTRANSLATABLE: Record<string, string> = {
  class: "client classes have no equivalent (use profiles and selectors for per-machine choices)",
  subclass: "client classes have no equivalent",
  "shared-network": "shared networks (several subnets on one wire) have no equivalent",
  failover: "DHCP failover has no equivalent: centra-pxe runs one server per subnet",
  include: "included files are not read; import them separately",
  key: "TSIG keys (DNS updates) have no equivalent: centra-pxe makes no DNS updates",
  zone: "DNS zones (DNS updates) have no equivalent: centra-pxe makes no DNS updates",
  on: "event hooks (on commit/release/expiry) have no equivalent",
  allow: "allow/deny switches have no equivalent",
  deny: "allow/deny switches have no equivalent (centra-pxe answers unknown clients from the pool)",
  ignore: "allow/deny switches have no equivalent",
  if: "conditionals have no equivalent",
  elsif: "conditionals have no equivalent",
  else: "conditionals have no equivalent",
  "ping-check": "centra-pxe does not ping an address before offering it",
  "ddns-update-style": "centra-pxe makes no DNS updates",
  "ddns-updates": "centra-pxe makes no DNS updates",
  group: "parameters of a group apply to its members only; centra-pxe has no groups",
};

/** Statements inside an `if` that only pick the boot file: centra-pxe makes that choice itself. */
const BOOT_FILE_STATEMENTS = new Set(["filename", "next-server", "server-name"]);

interface SubnetDraft {
  where: string;
  subnet: string;
  netmask: string;
  range?: { start: string; end: string };
  router?: string;
  dns?: string[];
  domain?: string;
  broadcast?: string;
  leaseSeconds?: number;
  maxLeaseSeconds?: number;
  maxLeaseWhere?: string;
  nextServer?: string;
}

interface HostDraft {
  where: string;
  line: number;
  name: string;
  mac?: string;
  ipAddress?: string;
  hostname?: string;
}

interface NodeDraft {
  mac: string;
  profile?: string;
  hostname?: string;
  ipAddress?: string;
  origin: string[];
}

export function importIscConfig(request: ImportRequest): ImportResult {
  const dhcpdName = basename(request.dhcpd.file);
  const result: ImportResult = { yaml: "", untranslated: [], covered: [], notes: [] };
  const at = (line: number) => `${dhcpdName}:${line}`;
  const untranslated = (s: Statement, reason: string) =>
    result.untranslated.push({ where: at(s.line), statement: describeStatement(s), reason });
  const covered = (s: Statement, reason: string) =>
    result.covered.push({ where: at(s.line), statement: describeStatement(s), reason });

  const global: SubnetDraft = { where: at(1), subnet: "", netmask: "" };
  const subnets: SubnetDraft[] = [];
  const hosts: HostDraft[] = [];

  /** A parameter that may appear globally or in a subnet; true when handled. */
  function parameter(s: Statement, target: SubnetDraft): boolean {
    const w = wordsOf(s);
    const keyword = w[0]!;
    if (keyword === "default-lease-time" || keyword === "max-lease-time") {
      const seconds = Number(w[1]);
      if (w.length !== 2 || !Number.isInteger(seconds) || seconds <= 0) untranslated(s, "not a number of seconds");
      else if (keyword === "default-lease-time") target.leaseSeconds = seconds;
      else {
        target.maxLeaseSeconds = seconds;
        target.maxLeaseWhere = at(s.line);
      }
      return true;
    }
    if (keyword === "next-server") {
      if (w.length === 2 && parseIpv4(w[1]!) !== undefined) target.nextServer = w[1]!;
      else untranslated(s, "next-server must be an IPv4 address to become serverAddress (a name is not resolved)");
      return true;
    }
    if (keyword !== "option") return false;
    const name = w[1] ?? "";
    const values = w.slice(2);
    if (values[0] === "code") {
      // The seed's dhcpd.conf defines option 93 to read the client's architecture (RFC 4578 §2.1);
      // centra-pxe reads option 93 itself (src/boot/firmware.ts).
      if (values[1] === "93") covered(s, "centra-pxe reads the client architecture (option 93, RFC 4578) itself");
      else untranslated(s, "option definitions have no equivalent: centra-pxe sends only the options it knows");
      return true;
    }
    const addresses = values.filter((v) => parseIpv4(v) !== undefined);
    const names = values.filter((v) => parseIpv4(v) === undefined);
    switch (name) {
      case "domain-name-servers":
        if (names.length > 0)
          untranslated(s, `${names.join(", ")}: dhcp.dns lists IPv4 addresses, names are not resolved at import`);
        if (addresses.length > 0) target.dns = addresses;
        return true;
      case "routers":
        if (names.length > 0)
          untranslated(s, `${names.join(", ")}: dhcp.router is an IPv4 address, names are not resolved at import`);
        if (addresses.length > 1)
          untranslated(s, `dhcp.router takes one router; ${addresses.slice(1).join(", ")} left out`);
        if (addresses[0] !== undefined) target.router = addresses[0];
        return true;
      case "domain-name":
        if (values.length === 1) target.domain = values[0]!;
        else untranslated(s, "dhcp.domain takes one domain");
        return true;
      case "broadcast-address":
        if (addresses.length === 1 && names.length === 0) target.broadcast = addresses[0]!;
        else untranslated(s, "not one IPv4 address");
        return true;
      case "subnet-mask":
        covered(s, "the netmask comes from the subnet declaration");
        return true;
      default:
        untranslated(s, `option ${name} is not among the options centra-pxe sends (PRODUCT.md §2)`);
        return true;
    }
  }

  function bootFileChoiceOnly(statements: readonly Statement[]): boolean {
    return statements.every((s) => {
      const keyword = s.words[0]?.text ?? "";
      if (keyword === "if" || keyword === "elsif" || keyword === "else") return bootFileChoiceOnly(s.block ?? []);
      return s.block === undefined && BOOT_FILE_STATEMENTS.has(keyword);
    });
  }

  /** Statements every scope treats alike; true when handled. */
  function common(s: Statement): boolean {
    const keyword = s.words[0]!.text;
    if ((keyword === "if" || keyword === "elsif" || keyword === "else") && s.block && bootFileChoiceOnly(s.block)) {
      covered(s, "the iPXE/BIOS/UEFI boot-file choice: centra-pxe makes it itself from options 77 and 93");
      return true;
    }
    if (keyword === "ddns-update-style" && wordsOf(s)[1] === "none") {
      covered(s, "centra-pxe makes no DNS updates");
      return true;
    }
    if (keyword in COVERED && !s.block) {
      covered(s, COVERED[keyword]!);
      return true;
    }
    return false;
  }

  function host(s: Statement): void {
    const draft: HostDraft = { where: at(s.line), line: s.line, name: wordsOf(s)[1] ?? "" };
    for (const inner of s.block ?? []) {
      const w = wordsOf(inner);
      const keyword = w[0]!;
      if (keyword === "hardware") {
        const mac = w[1] === "ethernet" && w.length === 3 ? iscMac(w[2]!) : undefined;
        if (mac) draft.mac = mac;
        else untranslated(inner, "only `hardware ethernet MAC` identifies a machine");
      } else if (keyword === "fixed-address") {
        const addresses = w.slice(1);
        if (addresses.length === 1 && parseIpv4(addresses[0]!) !== undefined) draft.ipAddress = addresses[0]!;
        else if (parseIpv4(addresses[0] ?? "") !== undefined) {
          draft.ipAddress = addresses[0]!;
          untranslated(inner, `a node has one fixed address; ${addresses.slice(1).join(", ")} left out`);
        } else untranslated(inner, "a fixed address must be an IPv4 address (names are not resolved at import)");
      } else if ((keyword === "option" && w[1] === "host-name") || keyword === "host-name") {
        const value = keyword === "option" ? w[2] : w[1];
        if (value !== undefined && HOSTNAME.test(value)) draft.hostname = value;
        else untranslated(inner, "not a valid hostname (letters, digits and '-', labels of at most 63 characters)");
      } else if (keyword === "filename" || keyword === "next-server" || keyword === "server-name") {
        untranslated(inner, "a boot file or server per host has no equivalent: the node's profile picks its image");
      } else if (!common(inner)) {
        untranslated(inner, UNTRANSLATABLE[keyword] ?? "no equivalent for a node (profile, hostname, ipAddress)");
      }
    }
    if (draft.mac === undefined) {
      untranslated(s, "a host without `hardware ethernet` (client-id, uid) cannot be keyed by MAC");
      return;
    }
    hosts.push(draft);
  }

  function pool(s: Statement, target: SubnetDraft): void {
    const blocking = (s.block ?? []).find((inner) => !["range"].includes(inner.words[0]!.text));
    if (blocking) {
      untranslated(s, "a pool with its own rules (failover, allow/deny, options) has no equivalent");
      return;
    }
    for (const inner of s.block ?? []) range(inner, target);
  }

  function range(s: Statement, target: SubnetDraft): void {
    const w = wordsOf(s).slice(1);
    if (w[0] === "dynamic-bootp") {
      w.shift();
      result.notes.push({
        where: at(s.line),
        statement: describeStatement(s),
        reason: "dynamic-bootp: centra-pxe answers DHCP clients only, not BOOTP",
      });
    }
    const [start, end = start] = w;
    if (start === undefined || parseIpv4(start) === undefined || parseIpv4(end!) === undefined || w.length > 2) {
      untranslated(s, "not a range of two IPv4 addresses");
    } else if (target.range) {
      untranslated(s, `dhcp.range is one range per subnet; kept ${target.range.start}-${target.range.end}`);
    } else target.range = { start, end: end! };
  }

  function subnet(s: Statement): void {
    const w = wordsOf(s);
    if (w.length !== 4 || w[2] !== "netmask" || parseIpv4(w[1]!) === undefined || parseIpv4(w[3]!) === undefined) {
      untranslated(s, "expected `subnet ADDRESS netmask MASK`");
      return;
    }
    const draft: SubnetDraft = { where: at(s.line), subnet: w[1]!, netmask: w[3]! };
    for (const inner of s.block ?? []) {
      const keyword = inner.words[0]!.text;
      if (keyword === "range") range(inner, draft);
      else if (keyword === "pool" && inner.block) pool(inner, draft);
      else if (keyword === "host" && inner.block) host(inner);
      else if (parameter(inner, draft) || common(inner)) continue;
      else untranslated(inner, UNTRANSLATABLE[keyword] ?? "no equivalent in centra-pxe");
    }
    subnets.push(draft);
  }

  function walk(statements: readonly Statement[], inGroup: boolean): void {
    for (const s of statements) {
      const keyword = s.words[0]!.text;
      if (keyword === "subnet" && s.block) subnet(s);
      else if (keyword === "host" && s.block) host(s);
      else if (keyword === "group" && s.block) {
        // Hosts and subnets inside a group are translated; the group's own parameters are not.
        const members = s.block.filter((m) => ["host", "subnet", "group"].includes(m.words[0]!.text) && m.block);
        const parameters = s.block.filter((m) => !members.includes(m));
        for (const p of parameters) if (!common(p)) untranslated(p, UNTRANSLATABLE.group!);
        walk(members, true);
      } else if (keyword === "shared-network" && s.block) sharedNetwork(s, s.block);
      else if (!inGroup && (parameter(s, global) || common(s))) continue;
      else untranslated(s, UNTRANSLATABLE[keyword] ?? "no equivalent in centra-pxe");
    }
  }

  /**
   * Several subnets on one wire: each subnet is imported as if declared alone (our config has one
   * subnet per interface or relay), a plain pool joins the subnet its range lies in, and the rest of
   * the block (its own parameters, pools with rules) is listed.
   */
  function sharedNetwork(s: Statement, block: readonly Statement[]): void {
    untranslated(s, `${UNTRANSLATABLE["shared-network"]!}; its subnets are imported one by one`);
    const before = subnets.length;
    walk(
      block.filter((m) => ["subnet", "host", "group"].includes(m.words[0]!.text) && m.block),
      false,
    );
    const inner = subnets.slice(before);
    for (const m of block) {
      const keyword = m.words[0]!.text;
      if (["subnet", "host", "group"].includes(keyword) && m.block) continue;
      if (keyword === "pool" && m.block) {
        const start = m.block.find((r) => r.words[0]!.text === "range") ?? m.block[0];
        const first = start ? wordsOf(start).find((w) => parseIpv4(w) !== undefined) : undefined;
        const home = inner.find((n) => first !== undefined && containsAddress(n, first));
        if (home) pool(m, home);
        else untranslated(m, "a pool whose range lies in none of the shared network's subnets");
      } else if (!common(m)) untranslated(m, "a parameter of the shared network as a whole has no equivalent");
    }
  }

  walk(parseDhcpdConf(request.dhcpd.text, dhcpdName), false);

  // ---- the subnets: one served directly, the others through relays ----
  const served = subnets.filter((s) => s.range !== undefined);
  for (const s of subnets.filter((x) => x.range === undefined))
    result.notes.push({
      where: s.where,
      statement: `subnet ${s.subnet} netmask ${s.netmask}`,
      reason: "no range of its own (or only in a pool left out): nothing is imported to serve there",
    });
  const nextServer = served.find((s) => s.nextServer)?.nextServer ?? global.nextServer;
  const contains = (s: SubnetDraft, address: string | undefined) =>
    address !== undefined && containsAddress(s, address);
  const facing = (s: SubnetDraft) => request.interfaces.find((i) => contains(s, i.address));
  const main = served.find((s) => contains(s, nextServer)) ?? served.find((s) => facing(s)) ?? served[0];
  const relayed = served.filter((s) => s !== main);
  for (const s of relayed)
    result.notes.push({
      where: s.where,
      statement: `subnet ${s.subnet} netmask ${s.netmask}`,
      reason: "written to dhcp.subnets (served through a relay): add the relay's address to dhcp.relays",
    });
  for (const s of [global, ...served])
    if (s.maxLeaseSeconds !== undefined && s.maxLeaseSeconds !== (s.leaseSeconds ?? s.maxLeaseSeconds))
      result.untranslated.push({
        where: s.maxLeaseWhere ?? s.where,
        statement: `max-lease-time ${s.maxLeaseSeconds}`,
        reason: "centra-pxe grants one lease time (dhcp.leaseTime, from default-lease-time)",
      });

  // dhcpd accepts a router or broadcast address off the subnet; our config refuses one (PRODUCT.md §2).
  for (const s of served)
    for (const key of ["router", "broadcast"] as const) {
      const value = s[key] ?? global[key];
      if (value !== undefined && !contains(s, value)) {
        result.untranslated.push({
          where: s.where,
          statement: `${key === "router" ? "option routers" : "option broadcast-address"} ${value}`,
          reason: `${value} is outside subnet ${s.subnet}/${s.netmask}`,
        });
        s[key] = ""; // dropped: written nowhere, and not inherited from the global value either
      }
    }

  // ---- interface and server address ----
  const iface = main ? facing(main) : undefined;
  const serverAddress = nextServer ?? iface?.address;

  // ---- nodes: host blocks, then the boot script's and the mappings' choices ----
  const nodes = new Map<string, NodeDraft>();
  const pools = served.map((s) => s.range!).map((r) => [parseIpv4(r.start)!, parseIpv4(r.end)!] as const);
  const fixed = new Map<string, string>();
  for (const h of hosts) {
    const node: NodeDraft = { mac: h.mac!, origin: [`host ${h.name} (${h.where})`] };
    if (nodes.has(h.mac!)) {
      result.untranslated.push({
        where: h.where,
        statement: `host ${h.name}`,
        reason: `MAC ${h.mac} is already declared by ${nodes.get(h.mac!)!.origin[0]}`,
      });
      continue;
    }
    const blockName = h.name.startsWith(UNNAMED_HOST_PREFIX) ? undefined : h.name;
    const hostname = h.hostname ?? (blockName !== undefined && HOSTNAME.test(blockName) ? blockName : undefined);
    if (hostname === undefined && blockName !== undefined)
      result.notes.push({
        where: h.where,
        statement: `host ${h.name}`,
        reason: "the block's name is not a valid hostname, so the node has none (letters, digits and '-')",
      });
    if (hostname !== undefined) node.hostname = hostname;
    if (h.ipAddress !== undefined) {
      const address = parseIpv4(h.ipAddress)!;
      const problem = !served.some((s) => contains(s, h.ipAddress))
        ? "is in no subnet the import serves"
        : pools.some(([a, b]) => address >= a && address <= b)
          ? "is inside the dynamic range (centra-pxe keeps fixed addresses out of the pool)"
          : fixed.has(h.ipAddress)
            ? `is already the fixed address of ${fixed.get(h.ipAddress)}`
            : undefined;
      if (problem)
        result.untranslated.push({
          where: h.where,
          statement: `fixed-address ${h.ipAddress}`,
          reason: `${h.ipAddress} ${problem}`,
        });
      else {
        node.ipAddress = h.ipAddress;
        fixed.set(h.ipAddress, `host ${h.name}`);
      }
    }
    nodes.set(h.mac!, node);
  }

  const readings: ScriptReading[] = [];
  if (request.mappings) readings.push(readMacMappings(request.mappings.text, basename(request.mappings.file)));
  if (request.ipxe) readings.push(readBootScript(request.ipxe.text, basename(request.ipxe.file)));
  const menuProfiles = readings.flatMap((r) => r.menuProfiles);
  const menuChoice = readings.find((r) => r.menuChoice)?.menuChoice;
  if (menuChoice?.defaultItem !== undefined && menuChoice.defaultItem !== "localdisk")
    result.notes.push({
      where: `${menuChoice.file}:${menuChoice.line}`,
      statement: `choose --default ${menuChoice.defaultItem}`,
      reason:
        "centra-pxe's menu boots the local disk when nobody chooses: installing wipes disks, so an unregistered " +
        "machine never does it by default (list the machine under nodes, or write a selector)",
    });
  for (const reading of readings) {
    for (const p of reading.problems)
      result.untranslated.push({ where: `${p.file}:${p.line}`, statement: "", reason: p.reason });
    // The boot script is read last: it is what the machines actually booted, so it wins a disagreement.
    for (const choice of reading.choices) chooseFor(choice);
  }

  function chooseFor(choice: MacChoice): void {
    const where = `${choice.file}:${choice.line}`;
    const node = nodes.get(choice.mac) ?? { mac: choice.mac, origin: [] };
    nodes.set(choice.mac, node);
    node.origin.push(where);
    if (choice.profile !== undefined) {
      if (!PROFILE_NAME.test(choice.profile)) {
        result.untranslated.push({
          where,
          statement: `profile ${choice.profile}`,
          reason: "profile names are lower-case letters, digits and '-'",
        });
      } else {
        if (node.profile !== undefined && node.profile !== choice.profile)
          result.notes.push({
            where,
            statement: `${choice.mac} profile ${choice.profile}`,
            reason: `replaces profile ${node.profile} (the boot script wins over the mappings file)`,
          });
        node.profile = choice.profile;
      }
    }
    if (choice.hostname !== undefined && node.hostname === undefined) {
      if (HOSTNAME.test(choice.hostname)) node.hostname = choice.hostname;
      else
        result.untranslated.push({ where, statement: `hostname ${choice.hostname}`, reason: "not a valid hostname" });
    }
  }

  const profileNames = [
    ...new Set([...menuProfiles, ...[...nodes.values()].flatMap((n) => (n.profile ? [n.profile] : []))]),
  ].filter((p) => PROFILE_NAME.test(p));
  const extraProfiles = profileNames.filter((p) => !SEED_PROFILE_NAMES.includes(p));

  const byPlace = (a: Finding, b: Finding) => {
    const [fa, la] = splitWhere(a.where);
    const [fb, lb] = splitWhere(b.where);
    return fa === fb ? la - lb : 0;
  };
  result.untranslated.sort(byPlace);
  result.notes.sort(byPlace);
  result.covered.sort(byPlace);

  // ---- YAML ----
  const out: string[] = [
    "# centra-pxe config imported from the ISC stack by `centra-pxe import`; review it, then `centra-pxe validate`.",
    `# Sources: ${[request.dhcpd, request.ipxe, request.mappings]
      .flatMap((s) => (s ? [basename(s.file)] : []))
      .join(", ")}`,
  ];
  if (request.interfaceName !== undefined) out.push(`interface: ${scalar(request.interfaceName)}`);
  else if (iface) out.push(`interface: ${scalar(iface.name)}`);
  else {
    const why = main ? `no interface of this host has an address in ${main.subnet}/${main.netmask}` : "no subnet";
    out.push(`interface: eth0 # PLACEHOLDER: ${why}; set the interface facing the machines`);
    result.notes.push({ where: at(1), statement: "interface", reason: `placeholder eth0: ${why}` });
  }
  if (serverAddress) out.push(`serverAddress: ${scalar(serverAddress)}`);
  else {
    // The server must sit in the subnet it serves (validate refuses a rogue-looking config), so
    // the placeholder is a free address there: not in the range, not the router, no host's.
    const taken = new Set(hosts.flatMap((h) => (h.ipAddress ? [h.ipAddress] : [])));
    const placeholder = (main && freeAddressIn(main, taken)) ?? "10.0.100.10";
    out.push(`serverAddress: ${placeholder} # PLACEHOLDER: no next-server and no interface in the subnet`);
    result.notes.push({
      where: at(1),
      statement: "serverAddress",
      reason: `placeholder ${placeholder}: no next-server; set this host's address facing the machines`,
    });
  }
  if (main) {
    out.push("dhcp:", ...subnetLines(main, global, "  "));
    if (relayed.length > 0) {
      out.push("  subnets:");
      for (const s of relayed) {
        const [first, ...rest] = subnetLines(s, global, "    ");
        out.push(`  - ${first!.trimStart()}`, ...rest);
      }
    }
  } else {
    result.notes.push({
      where: at(1),
      statement: "subnet",
      reason: "no subnet with a range: dhcp keeps the defaults of PRODUCT.md §2; set dhcp.subnet and dhcp.range",
    });
    out.push("# PLACEHOLDER: no subnet with a range in dhcpd.conf; dhcp keeps its defaults (10.0.100.0/24)");
    const globals = subnetLines({ ...global, subnet: "" }, global, "  ").filter(
      (l) => !l.startsWith("  subnet:") && !l.startsWith("  netmask:"),
    );
    if (globals.length > 0) out.push("dhcp:", ...globals);
  }
  if (menuChoice?.timeoutMs !== undefined && menuChoice.timeoutMs !== DEFAULT_MENU_TIMEOUT_MS)
    out.push("boot:", `  menuTimeout: ${scalar(formatSeconds(menuChoice.timeoutMs / 1000))}`);
  if (extraProfiles.length > 0) {
    out.push("profiles: # the seed's three and those the old stack named; image and cmdline are guesses, check them");
    for (const p of [...SEED_PROFILE_NAMES, ...extraProfiles]) out.push(`  ${p}:`, "    image: nixos");
  }
  if (nodes.size > 0) {
    out.push("nodes:");
    for (const n of nodes.values()) {
      const empty = n.profile === undefined && n.hostname === undefined && n.ipAddress === undefined;
      out.push(`  ${JSON.stringify(n.mac)}:${empty ? " {}" : ""} # ${n.origin.join(", ")}`);
      if (n.profile !== undefined) out.push(`    profile: ${scalar(n.profile)}`);
      if (n.hostname !== undefined) out.push(`    hostname: ${scalar(n.hostname)}`);
      if (n.ipAddress !== undefined) out.push(`    ipAddress: ${scalar(n.ipAddress)}`);
    }
  }
  const section = (title: string, findings: Finding[]) =>
    findings.length === 0
      ? []
      : [
          "",
          `# ${title}:`,
          ...findings.map((f) => `#   ${f.where}: ${f.statement ? `${f.statement} -- ` : ""}${f.reason}`),
        ];
  out.push(
    ...section("NOT TRANSLATED (left out; `centra-pxe import` exits 2)", result.untranslated),
    ...section("Check", result.notes),
    ...section("Covered by centra-pxe itself", result.covered),
  );
  result.yaml = `${out.join("\n")}\n`;
  return result;
}

function subnetLines(s: SubnetDraft, global: SubnetDraft, indent: string): string[] {
  const lines: string[] = [];
  const put = (key: string, value: string | undefined) => {
    if (value !== undefined && value !== "") lines.push(`${indent}${key}: ${scalar(value)}`);
  };
  put("subnet", s.subnet || undefined);
  put("netmask", s.netmask || undefined);
  if (s.subnet) {
    const net = parseIpv4(s.subnet)!;
    const mask = parseIpv4(s.netmask)!;
    const broadcast = s.broadcast ?? global.broadcast;
    // dhcpd computes the broadcast address when none is given; so does centra-pxe, so only an unusual one is written.
    if (broadcast !== undefined && (prefixLength(mask) === undefined || broadcast !== formatIpv4((net | ~mask) >>> 0)))
      put("broadcast", broadcast);
  } else put("broadcast", s.broadcast);
  if (s.range) lines.push(`${indent}range:`, `${indent}  start: ${s.range.start}`, `${indent}  end: ${s.range.end}`);
  put("router", s.router ?? global.router); // "": dropped as off the subnet, not inherited
  const dns = s.dns ?? global.dns;
  if (dns && dns.length > 0) lines.push(`${indent}dns:`, ...dns.map((d) => `${indent}  - ${d}`));
  put("domain", s.domain ?? global.domain);
  const seconds = s.leaseSeconds ?? global.leaseSeconds ?? s.maxLeaseSeconds ?? global.maxLeaseSeconds;
  // One hour is the config's default (PRODUCT.md §2): written only when the old stack said otherwise.
  if (seconds !== undefined && seconds !== DEFAULT_LEASE_SECONDS) put("leaseTime", formatSeconds(seconds));
  return lines;
}

function containsAddress(s: SubnetDraft, address: string): boolean {
  const a = parseIpv4(address);
  return a !== undefined && inSubnet(a, parseIpv4(s.subnet)!, parseIpv4(s.netmask)!);
}

function splitWhere(where: string): [string, number] {
  const colon = where.lastIndexOf(":");
  return [where.slice(0, colon), Number(where.slice(colon + 1))];
}

/** ISC writes MAC octets without leading zeros (`0:0:c0:5d:bd:95`); pad before normalising. */
export function iscMac(text: string): string | undefined {
  const parts = text.split(":");
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) return normalizeMac(text);
  return normalizeMac(parts.map((p) => p.padStart(2, "0")).join(":"));
}

/** Seconds as the config's duration (`600` → `10m`), the largest unit that divides it. */
export function formatSeconds(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400}d`;
  if (seconds % 3_600 === 0) return `${seconds / 3_600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

/** A YAML scalar: plain when YAML reads it back as the same string, quoted otherwise. */
function scalar(value: string): string {
  if (/^[0-9]+(\.[0-9]+){3}$/.test(value)) return value; // a dotted quad reads back as a string
  if (/^[A-Za-z][A-Za-z0-9._/-]*$/.test(value) && !/^(true|false|yes|no|on|off|null|y|n)$/i.test(value)) return value;
  return JSON.stringify(value);
}

/** The highest host address of `s` outside its range, other than its router and `taken`. */
function freeAddressIn(s: SubnetDraft, taken: ReadonlySet<string>): string | undefined {
  const network = parseIpv4(s.subnet);
  const mask = parseIpv4(s.netmask);
  if (network === undefined || mask === undefined) return undefined;
  const broadcast = (network | ~mask) >>> 0;
  const start = s.range ? parseIpv4(s.range.start) : undefined;
  const end = s.range ? parseIpv4(s.range.end) : undefined;
  for (let address = broadcast - 1; address > network; address--) {
    const text = formatIpv4(address);
    const inRange = start !== undefined && end !== undefined && address >= start && address <= end;
    if (!inRange && text !== s.router && !taken.has(text)) return text;
  }
  return undefined;
}
