import type { Command } from "commander";
import { findConfigFile, loadConfigFile } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { ConfigError } from "../errors.js";
import { parseConfig } from "../config/load.js";
import { serveForever } from "../server/serve.js";
import { runDoctorCommand } from "./doctor-command.js";

/** The config a command runs with: the file found per PRODUCT.md §1, or the embedded defaults. */
export function resolveConfig(explicit: string | undefined): { config: Config; file: string | undefined } {
  const file = findConfigFile(explicit, process.env);
  return { config: file ? loadConfigFile(file) : parseConfig("{}", "<defaults>"), file };
}

export function registerConfigCommands(program: Command): void {
  program
    .command("validate")
    .description("check a config file; every problem on its own line as FILE:LINE:COL key: message")
    .option("-c, --config <file>", "config file")
    .action((options: { config?: string }) => {
      const file = findConfigFile(options.config, process.env);
      if (!file) {
        process.stderr.write("no config file: pass --config, set CENTRA_PXE_CONFIG, or create ./centra-pxe.yaml\n");
        process.exitCode = 1;
        return;
      }
      try {
        loadConfigFile(file);
        process.stdout.write(`${file}: valid\n`);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        process.stdout.write(`${error.message}\n`);
        process.stderr.write(`${file}: ${error.problems.length} problem${error.problems.length === 1 ? "" : "s"}\n`);
        process.exitCode = 1;
      }
    });

  program
    .command("serve")
    .description("run DHCP, TFTP and HTTP in the foreground; SIGHUP reloads the config, SIGTERM stops")
    .option("-c, --config <file>", "config file")
    .action(async (options: { config?: string }) => {
      const { config, file } = resolveConfig(options.config);
      await serveForever(config, file);
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
