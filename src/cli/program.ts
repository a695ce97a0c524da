import { Command } from "commander";
import { registerConfigCommands } from "./config-commands.js";
import { registerLabCommand } from "./lab-command.js";
import { registerLeasesCommand } from "./leases-command.js";
import { registerMigrateCommands } from "./migrate-commands.js";
import { registerNodesCommands } from "./nodes-command.js";
import { registerStateCommands } from "./state-commands.js";
import { registerTokenCommands } from "./token-command.js";

/** Every `centra-pxe` command; `argv` as in `process.argv`. */
export async function runCli(argv: string[]): Promise<void> {
  const program = new Command()
    .name("centra-pxe")
    .description("Bare-metal network boot and provisioning: DHCP, TFTP, HTTP and iPXE in one daemon")
    .version("0.1.0")
    .enablePositionalOptions()
    .showHelpAfterError();

  registerConfigCommands(program);
  registerLabCommand(program);
  registerStateCommands(program);
  registerLeasesCommand(program);
  registerNodesCommands(program);
  registerTokenCommands(program);
  registerMigrateCommands(program);

  await program.parseAsync(argv);
}
