import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { BmcError, type BmcEndpoint } from "../bmc/client.js";
import { attachConsole } from "../bmc/sol.js";
import type { ApiClient } from "./nodes-command.js";

/**
 * `centra-pxe nodes console NODE`: the node's serial console over LAN (IPMI SOL) on this terminal,
 * and `--recorded`: what the server recorded of it while the node provisioned. The BMC's address
 * and user come from the server's inventory (which never returns a password); the password from
 * `--password-file`, else the node's `bmc.passwordFile` when this runs where that file is readable.
 */

/** A node's BMC as the API shows it (no secret in it). */
interface NodeBmcView {
  type: "ipmi" | "redfish";
  address: string;
  port?: number;
  username: string;
  passwordFile?: string;
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
    .option("--password-file <file>", "the BMC password (default: the node's bmc.passwordFile, read here)")
    .option("--cipher-suite <n>", "RMCP+ cipher suite for ipmitool -C (3 for ipmi_sim and old BMCs)")
    .option("--recorded", "print the console the server recorded while the node provisioned, instead of attaching")
    .action(
      async (
        ref: string,
        options: { passwordFile?: string; cipherSuite?: string; recorded?: boolean },
        command: Command,
      ) => {
        const api = client(command);
        if (options.recorded) {
          process.stdout.write(await api.text(`/nodes/${encodeURIComponent(ref)}/console`));
          return;
        }
        const node = await api.call<{ id: string; bmc?: unknown }>("GET", `/nodes/${encodeURIComponent(ref)}`);
        const bmc = nodeBmc(node);
        if (bmc.type !== "ipmi")
          throw new BmcError(
            "unsupported",
            `node ${node.id} has a Redfish BMC: Redfish offers no serial console a client can attach to (use the BMC's SSH or web console)`,
          );
        const passwordFile = options.passwordFile ?? bmc.passwordFile;
        if (!passwordFile)
          throw new BmcError(
            "credentials",
            `node ${node.id}: pass --password-file (the server keeps its BMC password)`,
          );
        const endpoint: BmcEndpoint = {
          protocol: "ipmi",
          address: bmc.address,
          ...(bmc.port !== undefined ? { port: bmc.port } : {}),
          username: bmc.username,
          password: readFileSync(passwordFile, "utf8").replace(/\r?\n$/, ""),
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
