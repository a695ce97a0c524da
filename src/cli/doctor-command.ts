import type { Command } from "commander";
import { parseConfig } from "../config/load.js";
import { runDoctor } from "../doctor/doctor.js";
import { findConfig, locateServer, printJson } from "./common.js";

/** `centra-pxe doctor`: the checks of src/doctor against the server the config (or --url) names. */
export function registerDoctorCommand(program: Command): void {
  program
    .command("doctor")
    .description(
      "check a running server end to end: DHCP offer on the interface, TFTP read of each bootloader, HTTP /health and the boot script",
    )
    .option("-c, --config <file>", "config file (default: $CENTRA_PXE_CONFIG, ./centra-pxe.yaml, …)")
    .option("--url <url>", "the HTTP checks' server (default: $CENTRA_PXE_URL, else http://serverAddress[:http.port])")
    .option("--json", "print the checks as JSON")
    .action(async (options: { config?: string; url?: string; json?: boolean }) => {
      const found = findConfig(options.config);
      const config = found?.config ?? parseConfig("{}", "<defaults>");
      // The HTTP checks go where a client command would (--url, CENTRA_PXE_URL), else where the config listens.
      const explicit = options.url !== undefined || (process.env.CENTRA_PXE_URL ?? "") !== "";
      const httpBase = explicit ? locateServer({ url: options.url }).base : undefined;
      const results = await runDoctor(config, httpBase === undefined ? {} : { httpBase });
      const failed = results.filter((r) => !r.ok).length;
      if (failed) process.exitCode = 1;
      if (options.json) {
        printJson({ ok: failed === 0, config: found?.file ?? null, checks: results });
        return;
      }
      for (const r of results) {
        process.stdout.write(`${r.ok ? "ok  " : "FAIL"} ${r.name}: ${r.detail}\n`);
        if (!r.ok && r.fix) process.stdout.write(`     fix: ${r.fix}\n`);
      }
      process.stdout.write(
        failed ? `${failed} of ${results.length} checks failed\n` : `all ${results.length} checks passed\n`,
      );
    });
}
