import { parseConfig } from "../config/load.js";
import { runDoctor } from "../doctor/doctor.js";
import { findConfig, locateServer, printJson } from "./common.js";

/**
 * `centra-pxe doctor` (registered in config-commands.ts): the checks of src/doctor against the
 * server the config names; the HTTP checks go to --url or $CENTRA_PXE_URL when given, as a client
 * command's would, else where the config's HTTP part listens.
 */
export async function runDoctorCommand(options: { config?: string; url?: string; json?: boolean }): Promise<void> {
  const found = findConfig(options.config);
  const config = found?.config ?? parseConfig("{}", "<defaults>");
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
}
