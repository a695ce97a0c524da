import { existsSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import { stringify } from "yaml";
import { EXAMPLE_CONFIG } from "../config/example.js";
import { findConfigFile, loadConfigFile, loadConfigFileWithWarnings, parseConfig } from "../config/load.js";
import { type Config, fileForm } from "../config/schema.js";
import { ConfigError, formatConfigProblem } from "../errors.js";
import { serveForever } from "../server/serve.js";

const WHERE_CONFIG_IS_LOOKED_FOR =
  "pass --config FILE, set CENTRA_PXE_CONFIG, or create ./centra-pxe.yaml or /etc/centra-pxe/config.yaml";
import { runDoctorCommand } from "./doctor-command.js";

/** The config a command runs with: the file found per PRODUCT.md §1, or the embedded defaults. */
export function resolveConfig(explicit: string | undefined): { config: Config; file: string | undefined } {
  const file = findConfigFile(explicit, process.env);
  return { config: file ? loadConfigFile(file) : parseConfig("{}", "<defaults>"), file };
}

/** No config file where one is needed, two given, or one that must not be overwritten: exit 1, with why. */
class ConfigFileArgumentError extends Error {
  readonly exitCode = 1;
}

function requireConfigFile(explicit: string | undefined, why: string): string {
  const file = findConfigFile(explicit, process.env);
  if (!file) throw new ConfigFileArgumentError(`no config file: ${WHERE_CONFIG_IS_LOOKED_FOR}; ${why}`);
  return file;
}

/** Print a config's problems (stdout, one per line) and a count (stderr); exit status 1. */
function reportInvalid(file: string, error: ConfigError): void {
  process.stdout.write(`${error.message}\n`);
  process.stderr.write(`${file}: ${error.problems.length} problem${error.problems.length === 1 ? "" : "s"}\n`);
  process.exitCode = 1;
}

export function registerConfigCommands(program: Command): void {
  program
    .command("validate")
    .description(
      "check a config file; every problem on its own line as FILE:LINE:COL key: message (warnings too, exit 0)",
    )
    .argument("[file]", "config file (like `dhcpd -t -cf FILE`); same as --config")
    .option("-c, --config <file>", "config file")
    .action((positional: string | undefined, options: { config?: string }) => {
      if (positional && options.config && positional !== options.config)
        throw new ConfigFileArgumentError(
          `two config files given (${positional} and --config ${options.config}); pass one`,
        );
      const file = findConfigFile(positional ?? options.config, process.env);
      if (!file) {
        process.stderr.write(`no config file: ${WHERE_CONFIG_IS_LOOKED_FOR}\n`);
        process.exitCode = 1;
        return;
      }
      try {
        const { warnings } = loadConfigFileWithWarnings(file);
        for (const w of warnings) process.stdout.write(`${formatConfigProblem(w)}\n`);
        process.stdout.write(
          `${file}: valid${warnings.length ? ` (${warnings.length} warning${warnings.length === 1 ? "" : "s"})` : ""}\n`,
        );
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        reportInvalid(file, error);
      }
    });

  const config = program.command("config").description("the effective config, and an example to start from");
  config
    .command("show")
    .description("print the effective config with every default filled in (YAML; --json for JSON)")
    .option("-c, --config <file>", "config file")
    .option("--json", "print JSON instead of YAML")
    .action((options: { config?: string; json?: boolean }) => {
      const file = requireConfigFile(options.config, "`config show` prints a file's effective config");
      let effective: Config;
      try {
        effective = loadConfigFile(file);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        reportInvalid(file, error);
        return;
      }
      const form = fileForm(effective);
      process.stdout.write(
        options.json
          ? `${JSON.stringify(form, null, 2)}\n`
          : `# ${file}, with every default filled in\n${stringify(form)}`,
      );
    });
  config
    .command("example")
    .description("write a commented example config that validates (to FILE, or to stdout)")
    .argument("[file]", "where to write it; never overwrites an existing file")
    .action((file: string | undefined) => {
      if (!file) {
        process.stdout.write(EXAMPLE_CONFIG);
        return;
      }
      if (existsSync(file)) throw new ConfigFileArgumentError(`${file} exists already; not overwriting it`);
      writeFileSync(file, EXAMPLE_CONFIG, { flag: "wx" });
      process.stderr.write(
        `wrote ${file}; edit interface, serverAddress and dhcp, then: centra-pxe validate ${file}\n`,
      );
    });

  program
    .command("serve")
    .description("run DHCP, TFTP and HTTP in the foreground; SIGHUP reloads the config, SIGTERM stops")
    .option("-c, --config <file>", "config file")
    .action(async (options: { config?: string }) => {
      // The embedded defaults are the lab's network (10.0.100.0/24 on eth0): served on a real
      // network they make a rogue DHCP server, so serve runs only from a file someone wrote.
      const file = requireConfigFile(
        options.config,
        "the embedded defaults are for `centra-pxe lab` (which writes its own); start from `centra-pxe config example FILE`",
      );
      const loaded = loadConfigFileWithWarnings(file);
      for (const w of loaded.warnings) process.stderr.write(`${formatConfigProblem(w)}\n`);
      await serveForever(loaded.config, file);
    });

  program
    .command("doctor")
    .description(
      "check a running server end to end: DHCP offer on the interface, TFTP read of each bootloader, HTTP /health and the boot script",
    )
    .option("-c, --config <file>", "config file (default: $CENTRA_PXE_CONFIG, ./centra-pxe.yaml, …)")
    .option("--url <url>", "the HTTP checks' server (default: $CENTRA_PXE_URL, else http://serverAddress[:http.port])")
    .option("--json", "print the checks as JSON")
    .action(runDoctorCommand);
}
