#!/usr/bin/env node
import { Command } from "commander";
import { registerConfigCommands } from "./config-commands.js";
import { registerLabCommand } from "./lab-command.js";
import { registerLeasesCommand } from "./leases-command.js";
import { registerNodesCommands } from "./nodes-command.js";
import { registerStateCommands } from "./state-commands.js";
import { registerTokenCommands } from "./token-command.js";

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

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`centra-pxe: ${(error as Error).message}\n`);
  process.exit(typeof (error as { exitCode?: unknown }).exitCode === "number" ? (error as { exitCode: number }).exitCode : 1);
});
