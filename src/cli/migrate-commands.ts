import { readFileSync, writeFileSync } from "node:fs";
import { readInterfaceAddresses } from "../dhcp/interface-addresses.js";
import type { Command } from "commander";
import { parseConfig } from "../config/load.js";
import { ConfigError } from "../errors.js";
import { DhcpdSyntaxError } from "../migrate/dhcpd-conf.js";
import { exportDhcpd, exportIpxe, exportNginx } from "../migrate/export.js";
import { type HostAddress, type ImportSource, importIscConfig } from "../migrate/import.js";
import { resolveConfig } from "./config-commands.js";

/** `centra-pxe import`'s exit statuses (README "Migrate from ISC dhcpd + atftpd + nginx"). */
export const IMPORT_EXIT = {
  /** Everything translated (or covered by centra-pxe itself). */
  complete: 0,
  /** Nothing written: a file unreadable, a dhcpd.conf syntax error, or a result that would not validate. */
  failed: 1,
  /** Written, but statements were left out; each is on stderr and at the end of the YAML. */
  partial: 2,
} as const;

const EXPORTS = { dhcpd: exportDhcpd, nginx: exportNginx, ipxe: exportIpxe } as const;

export function registerMigrateCommands(program: Command): void {
  program
    .command("import")
    .description(
      "translate an ISC stack (dhcpd.conf, the seed's boot.ipxe, mac-mappings.txt) into a centra-pxe config; " +
        "exit 0: complete, 2: written with statements left out (listed on stderr), 1: nothing written",
    )
    .requiredOption("--dhcpd <file>", "dhcpd.conf")
    .option("--ipxe <file>", "boot.ipxe whose `iseq ${mac} … && set profile …` lines give each MAC its profile")
    .option("--mac-mappings <file>", "mac-mappings.txt: MAC PROFILE [HOSTNAME] per line")
    .option("--interface <name>", "the interface facing the machines (default: the one with an address in the subnet)")
    .option("-o, --out <file>", "write the YAML here instead of stdout")
    .action((options: { dhcpd: string; ipxe?: string; macMappings?: string; interface?: string; out?: string }) => {
      let result: ReturnType<typeof importIscConfig>;
      try {
        result = importIscConfig({
          dhcpd: source(options.dhcpd),
          ...(options.ipxe ? { ipxe: source(options.ipxe) } : {}),
          ...(options.macMappings ? { mappings: source(options.macMappings) } : {}),
          interfaces: hostAddresses(),
          ...(options.interface ? { interfaceName: options.interface } : {}),
        });
      } catch (error) {
        // A syntax error in dhcpd.conf, or a file that cannot be read (ENOENT, EACCES, EISDIR, …).
        if (!(error instanceof DhcpdSyntaxError || (error as NodeJS.ErrnoException).syscall !== undefined)) throw error;
        process.stderr.write(`import: ${(error as Error).message}\n`);
        process.exitCode = IMPORT_EXIT.failed;
        return;
      }
      // The promise of the command: what it writes passes `centra-pxe validate`.
      try {
        parseConfig(result.yaml, options.out ?? "<import>");
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        process.stderr.write(`import: the result would not validate, nothing written:\n${error.message}\n`);
        process.exitCode = IMPORT_EXIT.failed;
        return;
      }
      if (options.out) writeFileSync(options.out, result.yaml);
      else process.stdout.write(result.yaml);
      for (const f of result.untranslated)
        process.stderr.write(`${f.where}: not translated: ${f.statement ? `${f.statement} -- ` : ""}${f.reason}\n`);
      for (const f of result.notes) process.stderr.write(`${f.where}: check: ${f.statement} -- ${f.reason}\n`);
      if (result.covered.length > 0)
        process.stderr.write(
          `import: ${result.covered.length} statement(s) need no translation (centra-pxe does it itself; listed in the YAML)\n`,
        );
      process.exitCode = result.untranslated.length > 0 ? IMPORT_EXIT.partial : IMPORT_EXIT.complete;
    });

  program
    .command("export")
    .description(
      "write the ISC stack's file for a fallback from the config: dhcpd (dhcpd.conf), nginx, ipxe (boot.ipxe)",
    )
    .argument("<what>", "dhcpd | nginx | ipxe")
    .option("-c, --config <file>", "config file")
    .option("-o, --out <file>", "write here instead of stdout")
    .action((what: string, options: { config?: string; out?: string }) => {
      if (!Object.hasOwn(EXPORTS, what)) {
        process.stderr.write(`export: ${JSON.stringify(what)} is not one of ${Object.keys(EXPORTS).join(", ")}\n`);
        process.exitCode = 1;
        return;
      }
      const { config } = resolveConfig(options.config);
      const text = EXPORTS[what as keyof typeof EXPORTS](config);
      if (options.out) writeFileSync(options.out, text);
      else process.stdout.write(text);
    });
}

function source(file: string): ImportSource {
  return { file, text: readFileSync(file, "utf8") };
}

/** This host's IPv4 addresses, to find the interface facing the imported subnet. */
function hostAddresses(): HostAddress[] {
  // The kernel's list, as DHCP's interface check reads it: a NIC without carrier still counts.
  return Object.entries(readInterfaceAddresses()).flatMap(([name, addresses]) =>
    addresses
      .filter((a) => !a.address.startsWith("127."))
      .map((a) => ({ name, address: a.address, netmask: a.netmask })),
  );
}
