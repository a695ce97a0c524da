import type { Command } from "commander";
import { resolve } from "node:path";
import { parseConfig } from "../config/load.js";
import { tlsDir } from "../files/state-dir.js";
import { initTls } from "../tls/certificates.js";
import { findConfig, jsonOption, printJson, resolveStateDir, type StateOptions, stateOptions } from "./common.js";

/** `centra-pxe tls init`: this site's CA and the HTTPS listener's certificate (issue 17). */
export function registerTlsCommands(program: Command): void {
  const tls = program.command("tls").description("HTTPS for boot: a CA of this site and the server's certificate");
  jsonOption(
    stateOptions(
      tls
        .command("init")
        .description(
          "make a CA and a server certificate for serverAddress in stateDir/tls (an existing CA is kept), and the CA as an EFI signature list for firmware",
        ),
    )
      .option(
        "--address <name>",
        "an address or host name the certificate is for (repeatable; default: serverAddress)",
        (value: string, previous: string[] = []) => [...previous, value],
      )
      .option("--dir <dir>", "where to write (default: stateDir/tls)")
      .option("--renew", "issue the server certificate again even if one exists (the CA stays)"),
  ).action(async (options: StateOptions & { address?: string[]; dir?: string; renew?: boolean; json?: boolean }) => {
    const config = findConfig(options.config)?.config ?? parseConfig("{}", "<defaults>");
    const dir = resolve(options.dir ?? tlsDir(resolveStateDir(options)));
    const result = await initTls(dir, {
      names: options.address?.length ? options.address : [config.serverAddress],
      ...(options.renew ? { renew: true } : {}),
    });
    if (options.json) {
      printJson(result);
      return;
    }
    for (const file of result.written) process.stdout.write(`wrote ${file}\n`);
    if (result.written.length === 0)
      process.stdout.write(`${dir}: CA and server certificate exist (--renew issues it again)\n`);
    process.stdout.write(
      [
        `server certificate for ${result.subjectAltName}`,
        "",
        "Serve HTTPS with these lines in the config's http: section (then SIGHUP or restart):",
        "  tls:",
        `    cert: ${result.files.cert}`,
        `    key: ${result.files.key}`,
        `    ca: ${result.files.ca}`,
        "",
        "Then `centra-pxe ipxe build` embeds the CA in our iPXE. UEFI HTTP boot firmware trusts it once",
        `${result.files.caSignatureList} is enrolled (OVMF: -fw_cfg name=etc/edk2/https/cacerts,file=…; set http.tls.uefiHttpBoot).`,
        "",
      ].join("\n"),
    );
  });
}
