import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { BmcError, type BmcEndpoint } from "../bmc/client.js";
import { attachConsole } from "../bmc/sol.js";
import { loadConfigFile } from "../config/load.js";
import type { ApiClient } from "./nodes-command.js";

/**
 * `centra-pxe nodes console NODE`: the node's serial console over LAN (IPMI SOL) on this terminal,
 * and `--recorded`: what the server recorded of it while the node provisioned. The BMC's address
 * and user come from the server's inventory (which never returns a password, nor where it is);
 * the password from `--password-file`, else from the node's `bmc.passwordFile` in the config file
 * given with `--config` (on the server's host, as root).
 */

/** A node's BMC as the API shows it (no secret in it, nor where the secret is). */
interface NodeBmcView {
  type: "ipmi" | "redfish";
  address: string;
  port?: number;
  username: string;
  cipherSuite?: number;
}

/** The node's BMC password file as the local config names it (the config's key is one of its MACs). */
function passwordFileFromConfig(configFile: string, macs: readonly string[]): string | undefined {
  const config = loadConfigFile(configFile);
  for (const [key, node] of Object.entries(config.nodes)) {
    const nodeMacs = [key, ...(node.macs ?? [])].map((m) => m.toLowerCase());
    if (node.bmc && macs.some((m) => nodeMacs.includes(m.toLowerCase()))) return node.bmc.passwordFile;
  }
  return undefined;
}

function nodeBmc(node: { id: string; bmc?: unknown }): NodeBmcView {
  const bmc = node.bmc as Partial<NodeBmcView> | undefined;
  if (!bmc || typeof bmc !== "object" || typeof bmc.address !== "string" || typeof bmc.username !== "string")
    throw new BmcError("unsupported", `node ${node.id} has no BMC (set one with \`nodes set ${node.id} --bmc-…\`)`);
  if (bmc.type !== "ipmi" && bmc.type !== "redfish")
    throw new BmcError("unsupported", `node ${node.id}: unknown BMC type ${JSON.stringify(bmc.type)}`);
  return bmc as NodeBmcView;
}

export function registerConsoleCommand(
  sub: (spec: string, description: string) => Command,
  client: (command: Command) => ApiClient,
): void {
  sub(
    "console <node>",
    "attach to the node's serial console over LAN (IPMI SOL through ipmitool; `~.` detaches); Redfish nodes have none",
  )
    .option("--password-file <file>", "the BMC password (default: the node's bmc.passwordFile in --config)")
    .option("--cipher-suite <n>", "RMCP+ cipher suite for ipmitool -C (3 for ipmi_sim and old BMCs)")
    .option("--recorded", "print the console the server recorded while the node provisioned, instead of attaching")
    .action(
      async (
        ref: string,
        options: { passwordFile?: string; cipherSuite?: string; recorded?: boolean; config?: string },
        command: Command,
      ) => {
        const api = client(command);
        if (options.recorded) {
          process.stdout.write(await api.text(`/nodes/${encodeURIComponent(ref)}/console`));
          return;
        }
        const node = await api.call<{ id: string; macs: string[]; bmc?: unknown }>(
          "GET",
          `/nodes/${encodeURIComponent(ref)}`,
        );
        const bmc = nodeBmc(node);
        if (bmc.type !== "ipmi")
          throw new BmcError(
            "unsupported",
            `node ${node.id} has a Redfish BMC: Redfish offers no serial console a client can attach to (use the BMC's SSH or web console)`,
          );
        const passwordFile =
          options.passwordFile ?? (options.config ? passwordFileFromConfig(options.config, node.macs) : undefined);
        if (!passwordFile)
          throw new BmcError(
            "credentials",
            `node ${node.id}: pass --password-file, or --config with the file that names its bmc.passwordFile (the server never hands out BMC passwords)`,
          );
        const endpoint: BmcEndpoint = {
          protocol: "ipmi",
          address: bmc.address,
          ...(bmc.port !== undefined ? { port: bmc.port } : {}),
          username: bmc.username,
          // One line, as ipmitool reads its -f file.
          password: readFileSync(passwordFile, "utf8").split(/\r?\n/)[0] ?? "",
          ...(bmc.cipherSuite !== undefined ? { cipherSuite: bmc.cipherSuite } : {}),
        };
        process.stderr.write(`[${node.id}: SOL to ${bmc.address}:${bmc.port ?? 623}; type ~. to detach]\n`);
        const status = await attachConsole(
          endpoint,
          options.cipherSuite !== undefined ? { cipherSuite: Number(options.cipherSuite) } : {},
        );
        process.exitCode = status;
      },
    );
}
