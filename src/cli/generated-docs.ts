import type { Command, Option } from "commander";

/**
 * Shell completion and the man page, generated from the commander definitions themselves: a new
 * command or flag appears in both the moment it is registered, and nothing here can drift.
 */

interface CommandNode {
  /** Words after `centra-pxe`, e.g. ["nodes", "list"]; empty for the program itself. */
  path: string[];
  command: Command;
}

/** The program and every command under it, parents before children, in registration order. */
export function walkCommands(program: Command): CommandNode[] {
  const nodes: CommandNode[] = [];
  const visit = (command: Command, path: string[]) => {
    nodes.push({ path, command });
    for (const sub of command.commands) visit(sub, [...path, sub.name()]);
  };
  visit(program, []);
  return nodes;
}

function optionWords(command: Command): string[] {
  const words: string[] = [];
  for (const option of command.options) {
    if (option.short) words.push(option.short);
    if (option.long) words.push(option.long);
  }
  // commander answers --help on every command (and --version on the program) without listing it.
  words.push("--help");
  if (command.parent === null && command.options.every((o) => o.long !== "--version")) words.push("--version");
  return words;
}

function takesValue(option: Option): boolean {
  return option.required || option.optional;
}

/** Every flag anywhere that is followed by a value: the shells complete a file name after it. */
function valueFlags(program: Command): string[] {
  const flags = new Set<string>();
  for (const { command } of walkCommands(program))
    for (const option of command.options.filter(takesValue)) {
      if (option.short) flags.add(option.short);
      if (option.long) flags.add(option.long);
    }
  return [...flags].sort();
}

const spaced = (path: string[]) => path.map((w) => ` ${w}`).join("");

/** `centra-pxe completion bash`: `source <(centra-pxe completion bash)` or a file in bash-completion's dir. */
export function bashCompletion(program: Command): string {
  const name = program.name();
  const fn = `_${name.replace(/[^A-Za-z0-9]/g, "_")}`;
  const nodes = walkCommands(program);
  const knownPaths = nodes.filter((n) => n.path.length > 0).map((n) => `"${spaced(n.path)}"`);
  const cases = nodes.map(
    (n) =>
      `    "${spaced(n.path)}") words="${[...n.command.commands.map((c) => c.name()), ...optionWords(n.command)].join(" ")}" ;;`,
  );
  return `# bash completion for ${name}, generated from its command definitions (${name} completion bash)
${fn}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} cmdpath="" words="" w i
  case "$prev" in
    ${valueFlags(program).join("|")}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    [[ $w == -* ]] && continue
    case "$cmdpath $w" in
      ${knownPaths.join("|")}) cmdpath="$cmdpath $w" ;;
    esac
  done
  case "$cmdpath" in
${cases.join("\n")}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F ${fn} ${name}
`;
}

const zshQuote = (text: string) => `'${text.replace(/'/g, "'\\''")}'`;
/** A `_describe` entry: `word:description`, with colons in the word escaped. */
const zshEntry = (word: string, description: string) =>
  zshQuote(`${word.replace(/:/g, "\\:")}:${description.replace(/\s+/g, " ")}`);

/** `centra-pxe completion zsh`: save as `_centra-pxe` in a directory of $fpath, or `source <(…)`. */
export function zshCompletion(program: Command): string {
  const name = program.name();
  const fn = `_${name.replace(/[^A-Za-z0-9]/g, "_")}`;
  const nodes = walkCommands(program);
  const knownPaths = nodes.filter((n) => n.path.length > 0).map((n) => `"${spaced(n.path)}"`);
  const cases = nodes.map((n) => {
    const entries = [
      ...n.command.commands.map((c) => zshEntry(c.name(), c.description())),
      ...n.command.options.flatMap((o) =>
        [o.short, o.long].filter((f): f is string => f !== undefined).map((f) => zshEntry(f, o.description)),
      ),
      zshEntry("--help", "show help"),
    ];
    return `    "${spaced(n.path)}") candidates=(${entries.join(" ")}) ;;`;
  });
  // `path` is zsh's array tied to $PATH: the variable is called cmdpath so completing cannot clobber it.
  return `#compdef ${name}
# zsh completion for ${name}, generated from its command definitions (${name} completion zsh)
${fn}() {
  local cmdpath="" w i
  local -a candidates
  case "\${words[CURRENT-1]}" in
    ${valueFlags(program).join("|")}) _files; return ;;
  esac
  for ((i = 2; i < CURRENT; i++)); do
    w=\${words[i]}
    [[ $w == -* ]] && continue
    case "$cmdpath $w" in
      ${knownPaths.join("|")}) cmdpath="$cmdpath $w" ;;
    esac
  done
  case "$cmdpath" in
${cases.join("\n")}
  esac
  _describe -t commands ${zshQuote(name)} candidates
}
if [[ \${zsh_eval_context[-1]} == loadautofunc ]]; then
  ${fn} "$@"
else
  compdef ${fn} ${name}
fi
`;
}

/** Text for roff: backslashes and hyphens escaped, no line starting with a control character. */
function roff(text: string): string {
  return text
    .replace(/\\/g, "\\e")
    .replace(/-/g, "\\-")
    .split("\n")
    .map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
    .join("\n");
}

export interface ManPageExtras {
  version: string;
  date: string;
  /** [name, meaning] of each environment variable. */
  environment: [string, string][];
  /** [status, meaning]. */
  exitStatus: [string, string][];
  files: [string, string][];
}

/** `centra-pxe man`: the manual page in roff (`man -l <(centra-pxe man)`); also dist/centra-pxe.1 at build. */
export function manPage(program: Command, extras: ManPageExtras): string {
  const name = program.name();
  const lines: string[] = [
    `.TH ${name.toUpperCase().replace(/-/g, "\\-")} 1 "${extras.date}" "${roff(name)} ${roff(extras.version)}" "User Commands"`,
    ".SH NAME",
    `${roff(name)} \\- ${roff(program.description())}`,
    ".SH SYNOPSIS",
    `.B ${roff(name)}`,
    ".I command",
    "[\\fIoptions\\fR]",
    ".SH COMMANDS",
  ];
  for (const { path, command } of walkCommands(program).filter((n) => n.path.length > 0)) {
    lines.push(`.SS "${roff([name, ...path].join(" "))} ${roff(command.usage())}"`, roff(command.description()));
    for (const option of command.options) {
      lines.push(".TP", `.B ${roff(option.flags)}`);
      const fallback = option.defaultValue === undefined ? "" : ` (default: ${String(option.defaultValue)})`;
      lines.push(roff(`${option.description}${fallback}`));
    }
  }
  const section = (title: string, rows: [string, string][]) => {
    lines.push(`.SH ${title}`);
    for (const [term, meaning] of rows) lines.push(".TP", `.B ${roff(term)}`, roff(meaning));
  };
  section("ENVIRONMENT", extras.environment);
  section("EXIT STATUS", extras.exitStatus);
  section("FILES", extras.files);
  return `${lines.join("\n")}\n`;
}
