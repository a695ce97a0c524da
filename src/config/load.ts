import { existsSync, readFileSync } from "node:fs";
import { userInfo } from "node:os";
import {
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type Document,
  type Node as YamlNode,
  type YAMLError,
} from "yaml";
import {
  defaultErrorMap,
  ZodArray,
  ZodDefault,
  ZodEffects,
  ZodObject,
  ZodOptional,
  ZodRecord,
  type ZodIssue,
  type ZodTypeAny,
} from "zod";
import { ConfigError, type ConfigProblem } from "../errors.js";
import { closest } from "./primitives.js";
import { configSchema, configSchemaFor, configWarnings, normalizeConfig, writtenKeys, type Config } from "./schema.js";

/** PRODUCT.md §1: `--config`, else `$CENTRA_PXE_CONFIG`, else `./centra-pxe.yaml`, else `/etc/centra-pxe/config.yaml`. */
export function findConfigFile(explicit: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (explicit) return explicit;
  if (env.CENTRA_PXE_CONFIG) return env.CENTRA_PXE_CONFIG;
  for (const candidate of ["centra-pxe.yaml", "/etc/centra-pxe/config.yaml"]) {
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** A valid config and the remarks `validate` prints beside it (`FILE:LINE:COL key: warning: …`). */
export interface LoadedConfig {
  config: Config;
  warnings: ConfigProblem[];
}

export function loadConfigFile(file: string): Config {
  return loadConfigFileWithWarnings(file).config;
}

export function loadConfigFileWithWarnings(file: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    // No position: there is no line 1 in a file we could not read (line 0 prints as `FILE: …`).
    throw new ConfigError([{ file, line: 0, col: 0, path: "", message: `cannot read: ${whyUnreadable(error)}` }]);
  }
  return parseConfigWithWarnings(text, file);
}

function whyUnreadable(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES" || code === "EPERM")
    return `permission denied for user ${userName()} (make it readable, e.g. chmod o+r, or run as its owner)`;
  if (code === "EISDIR") return "is a directory, not a file";
  return (error as Error).message;
}

function userName(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? "?");
  }
}

/**
 * Parse and validate config text. Throws a ConfigError that holds every problem, each located at
 * the line and column of the offending key or value in the YAML source.
 */
export function parseConfig(text: string, file = "<config>"): Config {
  return parseConfigWithWarnings(text, file).config;
}

/** `parseConfig`, and the warnings of a valid config, located the same way. */
export function parseConfigWithWarnings(text: string, file = "<config>"): LoadedConfig {
  const lineCounter = new LineCounter();
  // Repeated keys are found below, by name; YAML's own check stops at the first with a vaguer message.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false });
  const at = (offset: number) => {
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, col: pos.col };
  };
  const problems: ConfigProblem[] = repeatedKeys(doc, file, at);
  for (const error of doc.errors) {
    problems.push({ file, ...at(error.pos[0]), path: "", message: yamlProblem(error, at) });
  }
  // Past a syntax error the document is a guess; checking its fields would report the guess.
  if (doc.errors.length > 0) throw new ConfigError(sortProblems(problems));

  const raw: unknown = doc.toJS() ?? {};
  const result = configSchemaFor(writtenKeys(raw)).safeParse(raw);
  if (result.success && problems.length === 0) {
    const config = normalizeConfig(result.data);
    const warnings = configWarnings(config).map((w) => ({
      ...locate(w.path, doc, file, at),
      message: `warning: ${w.message}`,
    }));
    return { config, warnings: sortProblems(warnings) };
  }
  if (!result.success) for (const issue of result.error.issues) problems.push(...locateIssue(issue, doc, file, at));
  throw new ConfigError(sortProblems(problems));
}

function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  return problems.sort((a, b) => a.line - b.line || a.col - b.col);
}

type At = (offset: number) => { line: number; col: number };

/** Every key written twice in one map, named, with both lines: YAML would silently keep one of them. */
function repeatedKeys(doc: Document, file: string, at: At): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const walk = (node: unknown, path: (string | number)[]) => {
    if (isMap(node)) {
      const first = new Map<unknown, YamlNode>();
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? pair.key.value : undefined;
        if (key === undefined) continue;
        const keyNode = pair.key as YamlNode;
        const earlier = first.get(key);
        if (earlier) {
          const here = at(keyNode.range?.[0] ?? 0);
          const there = at(earlier.range?.[0] ?? 0);
          problems.push({
            file,
            ...here,
            path: [...path, String(key)].join("."),
            message: `repeated key: also on line ${there.line}; write it once (YAML would keep only the last)`,
          });
        } else {
          first.set(key, keyNode);
        }
        walk(pair.value, [...path, String(key)]);
      }
    } else if (isSeq(node)) {
      for (const [i, item] of node.items.entries()) walk(item, [...path, i]);
    }
  };
  walk(doc.contents, []);
  return problems;
}

/** YAML's errors, in our words where theirs name the library rather than the file's mistake. */
function yamlProblem(error: YAMLError, at: At): string {
  switch (error.code) {
    case "MULTIPLE_DOCS":
      return `a second YAML document starts on line ${at(error.pos[0]).line} ("---"); a config file is one document`;
    case "TAB_AS_INDENT":
      return "a tab used as indentation; YAML indents with spaces only";
    default:
      return `YAML syntax: ${error.message.split("\n")[0]}`;
  }
}

/** A problem at `path`: its value, else the deepest part of the path the file has. */
function locate(path: (string | number)[], doc: Document, file: string, at: At): Omit<ConfigProblem, "message"> {
  let node: YamlNode | undefined;
  for (let depth = path.length; depth >= 0 && !node; depth--) node = nodeAt(doc, path.slice(0, depth));
  return { file, ...at(node?.range?.[0] ?? 0), path: path.join(".") };
}

function locateIssue(issue: ZodIssue, doc: Document, file: string, at: At): ConfigProblem[] {
  const path = issue.path.join(".");
  if (issue.code === "unrecognized_keys") {
    const parent = nodeAt(doc, issue.path);
    const known = knownKeys(issue.path);
    return issue.keys.map((key) => {
      const keyNode = isMap(parent)
        ? parent.items.find((pair) => isScalar(pair.key) && pair.key.value === key)?.key
        : undefined;
      const offset = (keyNode as YamlNode | undefined)?.range?.[0] ?? parent?.range?.[0] ?? 0;
      const hint = closest(key, known);
      return {
        file,
        ...at(offset),
        path: [...issue.path, key].join("."),
        message: `unknown key${hint ? `; did you mean "${hint}"?` : known.length ? ` (known: ${known.join(", ")})` : ""}`,
      };
    });
  }
  let where = locate(issue.path, doc, file, at);
  // For a map entry reported as a whole (a MAC key), the key is the better place to point.
  const last = issue.path[issue.path.length - 1];
  const parent = nodeAt(doc, issue.path.slice(0, -1));
  if (typeof last === "string" && isMap(parent) && issue.path[0] === "nodes" && issue.path.length === 2) {
    const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === last);
    if (pair && isScalar(pair.key)) where = { file, ...at(pair.key.range?.[0] ?? 0), path };
  }
  return [{ ...where, path, message: describe(issue) }];
}

/**
 * An issue in our words. A message the schema wrote (`invalid_type_error`, a refinement) is kept;
 * zod's own wording ("String must contain at least 1 character(s)", "Expected string, received
 * number") is replaced, recognised as what zod's default error map would have said.
 */
function describe(issue: ZodIssue): string {
  const libraryWording = defaultErrorMap(issue, { defaultError: issue.message, data: undefined }).message;
  if (issue.message !== libraryWording) return issue.message;
  switch (issue.code) {
    case "invalid_type":
      if (issue.received === "undefined") return "is required";
      return `must be ${article(issue.expected)}, not ${article(issue.received)}`;
    case "invalid_enum_value":
      return `must be one of ${issue.options.map((o) => JSON.stringify(o)).join(", ")}, not ${JSON.stringify(issue.received)}`;
    case "too_small":
      if (issue.type === "string")
        return Number(issue.minimum) <= 1 ? "must not be empty" : `must be at least ${issue.minimum} characters`;
      if (issue.type === "array") return `must list at least ${issue.minimum}`;
      return issue.inclusive ? `must be at least ${issue.minimum}` : `must be more than ${issue.minimum}`;
    case "too_big":
      if (issue.type === "string") return `must be at most ${issue.maximum} characters`;
      if (issue.type === "array") return `must list at most ${issue.maximum}`;
      return issue.inclusive ? `must be at most ${issue.maximum}` : `must be less than ${issue.maximum}`;
    case "invalid_string":
      return issue.validation === "url" ? "is not a URL" : "is not in the expected form";
    case "not_multiple_of":
      return `must be a multiple of ${issue.multipleOf}`;
    case "not_finite":
      return "must be a finite number";
    default:
      return "is not a value this key accepts";
  }
}

/** zod's type names as words: "a number", "an integer", "a list", "a map". */
function article(type: string): string {
  const words: Record<string, string> = {
    integer: "a whole number",
    float: "a number",
    array: "a list",
    object: "a map",
    null: "empty",
    nan: "a number",
  };
  return words[type] ?? (/^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`);
}

function nodeAt(doc: Document, path: (string | number)[]): YamlNode | undefined {
  if (path.length === 0) return (doc.contents as YamlNode | null) ?? undefined;
  const node = doc.getIn(path, true);
  return node && typeof node === "object" && "range" in node ? (node as YamlNode) : undefined;
}

/** Look through the wrappers zod puts around a schema (defaults, optionals, refinements). */
function unwrap(schema: ZodTypeAny): ZodTypeAny {
  for (;;) {
    if (schema instanceof ZodDefault || schema instanceof ZodOptional) schema = schema._def.innerType as ZodTypeAny;
    else if (schema instanceof ZodEffects) schema = schema.innerType() as ZodTypeAny;
    else return schema;
  }
}

/** The keys the schema accepts at a path, for "did you mean" hints. */
function knownKeys(path: (string | number)[]): string[] {
  let schema: ZodTypeAny | undefined = unwrap(configSchema);
  for (const step of path) {
    if (schema instanceof ZodObject) schema = (schema.shape as Record<string, ZodTypeAny>)[String(step)];
    else if (schema instanceof ZodRecord) schema = schema.valueSchema as ZodTypeAny;
    else if (schema instanceof ZodArray) schema = schema.element as ZodTypeAny;
    else return [];
    if (!schema) return [];
    schema = unwrap(schema);
  }
  return schema instanceof ZodObject ? Object.keys(schema.shape as object) : [];
}
