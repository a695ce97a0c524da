import { existsSync, readFileSync } from "node:fs";
import { isMap, isScalar, LineCounter, parseDocument, type Document, type Node as YamlNode } from "yaml";
import {
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
import { configSchema, normalizeConfig, type Config } from "./schema.js";

/** PRODUCT.md §1: `--config`, else `$CENTRA_PXE_CONFIG`, else `./centra-pxe.yaml`, else `/etc/centra-pxe/config.yaml`. */
export function findConfigFile(explicit: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (explicit) return explicit;
  if (env.CENTRA_PXE_CONFIG) return env.CENTRA_PXE_CONFIG;
  for (const candidate of ["centra-pxe.yaml", "/etc/centra-pxe/config.yaml"]) {
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

export function loadConfigFile(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError([
      { file, line: 1, col: 1, path: "", message: `cannot read the config file: ${(error as Error).message}` },
    ]);
  }
  return parseConfig(text, file);
}

/**
 * Parse and validate config text. Throws a ConfigError that holds every problem, each located at
 * the line and column of the offending key or value in the YAML source.
 */
export function parseConfig(text: string, file = "<config>"): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number) => {
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, col: pos.col };
  };
  const problems: ConfigProblem[] = [];
  for (const error of doc.errors) {
    problems.push({ file, ...at(error.pos[0]), path: "", message: `YAML syntax: ${error.message.split("\n")[0]}` });
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const raw: unknown = doc.toJS() ?? {};
  const result = configSchema.safeParse(raw);
  if (result.success) return normalizeConfig(result.data);

  for (const issue of result.error.issues) problems.push(...locateIssue(issue, doc, file, at));
  problems.sort((a, b) => a.line - b.line || a.col - b.col);
  throw new ConfigError(problems);
}

function locateIssue(
  issue: ZodIssue,
  doc: Document,
  file: string,
  at: (offset: number) => { line: number; col: number },
): ConfigProblem[] {
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
  // Point at the deepest node that exists: a missing key is reported at its parent.
  let node: YamlNode | undefined;
  for (let depth = issue.path.length; depth >= 0 && !node; depth--) node = nodeAt(doc, issue.path.slice(0, depth));
  // For a map entry reported as a whole (a MAC key), the key is the better place to point.
  const last = issue.path[issue.path.length - 1];
  const parent = nodeAt(doc, issue.path.slice(0, -1));
  if (typeof last === "string" && isMap(parent) && issue.path[0] === "nodes" && issue.path.length === 2) {
    const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === last);
    if (pair && isScalar(pair.key)) node = pair.key;
  }
  const offset = node?.range?.[0] ?? 0;
  return [{ file, ...at(offset), path, message: describe(issue) }];
}

function describe(issue: ZodIssue): string {
  if (issue.code === "invalid_type") {
    if (issue.received === "undefined") return "is required";
    return `must be ${issue.expected}, not ${issue.received}`;
  }
  if (issue.code === "invalid_enum_value")
    return `must be one of ${issue.options.map((o) => JSON.stringify(o)).join(", ")}, not ${JSON.stringify(issue.received)}`;
  return issue.message;
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
