/**
 * The error hierarchy of Centra PXE. Every error has a stable `code` that logs, the CLI and the API
 * can match on; messages are for people.
 */
export class CentraError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A located config problem: `file:line:col key.path: message`. */
export interface ConfigProblem {
  file: string;
  line: number;
  col: number;
  path: string;
  message: string;
}

export function formatConfigProblem(p: ConfigProblem): string {
  // Line 0: about the file as a whole (it could not be read); no position to make up.
  if (p.line === 0) return `${p.file}: ${p.message}`;
  return `${p.file}:${p.line}:${p.col} ${p.path || "(root)"}: ${p.message}`;
}

/** Every problem of a config at once, so an operator fixes them in one pass. */
export class ConfigError extends CentraError {
  constructor(readonly problems: ConfigProblem[]) {
    super("CONFIG_INVALID", problems.map(formatConfigProblem).join("\n"));
  }
}

/** A wire-format decode failure; `offset` is where in the datagram decoding stopped. */
export class DecodeError extends CentraError {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super("DECODE", `${message} (at byte ${offset})`);
  }
}

export class NotFoundError extends CentraError {
  constructor(what: string) {
    super("NOT_FOUND", `${what} not found`);
  }
}

/** An HTTP-visible failure; `status` goes on the wire, `message` in the body. */
export class HttpError extends CentraError {
  constructor(
    readonly status: number,
    message: string,
    code = `HTTP_${status}`,
  ) {
    super(code, message);
  }
}

/** A request for a path outside the served root, on any protocol. */
export class PathEscapeError extends CentraError {
  constructor(readonly requested: string) {
    super("PATH_ESCAPE", `refused path outside the served root: ${JSON.stringify(requested)}`);
  }
}

/** Why one part refused a new config in its `check` (before any part applied it). */
export interface ReloadRefusal {
  part: string;
  reason: string;
}

/** A reload that no part applied: at least one part's `check` refused the new config. */
export class ReloadRefusedError extends CentraError {
  constructor(readonly refusals: ReloadRefusal[]) {
    super("RELOAD_REFUSED", `reload refused by ${refusals.map((r) => `${r.part}: ${r.reason}`).join("; ")}`);
  }
}

/**
 * A part failed to apply a config every part had accepted. `rolledBack` tells whether every part
 * that had applied it went back to the old config; when false, the daemon is in a state nobody
 * configured and must not go on serving.
 */
export class ReloadFailedError extends CentraError {
  constructor(
    readonly part: string,
    readonly rolledBack: boolean,
    message: string,
    options?: { cause?: unknown },
  ) {
    super("RELOAD_FAILED", message, options);
  }
}
