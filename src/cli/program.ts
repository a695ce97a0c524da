import { Command, CommanderError } from "commander";
import { printJson } from "./common.js";
import { registerAuditCommand } from "./audit-command.js";
import { registerConfigCommands } from "./config-commands.js";
import { registerDbCommands } from "./db-command.js";
import { bashCompletion, manPage, zshCompletion } from "./generated-docs.js";
import { registerLabCommand } from "./lab-command.js";
import { registerLeasesCommand } from "./leases-command.js";
import { registerMigrateCommands } from "./migrate-commands.js";
import { registerNodesCommands } from "./nodes-command.js";
import { registerStateCommands } from "./state-commands.js";
import { registerTokenCommands } from "./token-command.js";
import { packageVersion, versionInfo } from "./version.js";

/** Exit statuses, the same for every command (said in --help, the man page and the README). */
export const ExitCode = { Ok: 0, Failed: 1, Usage: 2 } as const;

const ENVIRONMENT: [string, string][] = [
  [
    "CENTRA_PXE_CONFIG",
    "the config file when --config is not given (else ./centra-pxe.yaml, /etc/centra-pxe/config.yaml)",
  ],
  ["CENTRA_PXE_STATE_DIR", "the state directory when --state-dir is not given (else the config's stateDir)"],
  [
    "CENTRA_PXE_URL",
    "the server of nodes/doctor when --url is not given (else http://serverAddress[:http.port] of the config)",
  ],
  ["CENTRA_PXE_TOKEN", "the admin token of nodes when --token is not given"],
];
const EXIT_STATUS: [string, string][] = [
  [String(ExitCode.Ok), "success"],
  [String(ExitCode.Failed), "the command failed (a bad config, no server, a refused change, a failed check)"],
  [String(ExitCode.Usage), "usage error: an unknown command or option, a missing argument"],
  ["70", "serve only: a stray internal error (EX_SOFTWARE); the service manager restarts it"],
];
const FILES: [string, string][] = [
  ["/etc/centra-pxe/config.yaml", "the config file found when no other is named"],
  ["/var/lib/pxe-boot", "the default state directory: ipxe/, images/, centra-pxe.db"],
];

const rows = (pairs: [string, string][]) => pairs.map(([k, v]) => `  ${k.padEnd(22)} ${v}`).join("\n");

/** Every `centra-pxe` command, not yet parsed: the CLI, the completion and the man page read the same tree. */
export function buildProgram(): Command {
  const version = packageVersion();
  const program = new Command()
    .name("centra-pxe")
    .description("Bare-metal network boot and provisioning: DHCP, TFTP, HTTP and iPXE in one daemon")
    .version(version)
    .enablePositionalOptions()
    .showHelpAfterError()
    // Usage errors throw instead of exiting with 1, so runCli can give them their own status (2).
    // Set before any command is added: subcommands copy it when created.
    .exitOverride()
    .addHelpText("after", `\nEnvironment:\n${rows(ENVIRONMENT)}\n\nExit status:\n${rows(EXIT_STATUS)}\n`);

  registerConfigCommands(program);
  registerLabCommand(program);
  registerStateCommands(program);
  registerLeasesCommand(program);
  registerNodesCommands(program);
  registerTokenCommands(program);
  registerAuditCommand(program);
  registerMigrateCommands(program);
  registerDbCommands(program);

  program
    .command("version")
    .description("the version, the git commit it was built from and the Node.js running it")
    .option("--json", "print JSON")
    .action((options: { json?: boolean }) => {
      const info = versionInfo();
      if (options.json) printJson(info);
      else
        process.stdout.write(`${info.name} ${info.version} (commit ${info.commit ?? "unknown"}) node ${info.node}\n`);
    });

  program
    .command("completion")
    .description("print a shell completion script generated from these commands: bash or zsh")
    .argument("<shell>", "bash or zsh")
    .addHelpText(
      "after",
      "\nbash: source <(centra-pxe completion bash)\nzsh:  centra-pxe completion zsh > ~/.zfunc/_centra-pxe (a directory in $fpath)\n",
    )
    .action((shell: string) => {
      if (shell === "bash") process.stdout.write(bashCompletion(program));
      else if (shell === "zsh") process.stdout.write(zshCompletion(program));
      else
        throw new CommanderError(ExitCode.Usage, "centra-pxe.shell", `error: no completion for ${shell}; bash or zsh`);
    });

  program
    .command("man")
    .description("print the manual page (roff), generated from these commands: man -l <(centra-pxe man)")
    .action(() => {
      process.stdout.write(
        manPage(program, {
          version,
          date: new Date().toISOString().slice(0, 10),
          environment: ENVIRONMENT,
          exitStatus: EXIT_STATUS,
          files: FILES,
        }),
      );
    });

  return program;
}

/** Run one `centra-pxe` command; `argv` as in `process.argv`. Usage errors end with status 2. */
export async function runCli(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    // commander has printed the message (and the help after it); --help and --version end with 0.
    if (error.code === "centra-pxe.shell") process.stderr.write(`${error.message}\n`);
    process.exitCode = error.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
  }
}
