/**
 * A reader for ISC dhcpd's `dhcpd.conf` (dhcpd.conf(5)): a tokenizer and a statement tree, nothing
 * about what the statements mean (import.ts decides that). The grammar is small: a statement is
 * words up to `;`, or words followed by a `{ … }` block of statements; `#` starts a comment to the
 * end of the line outside a quoted string. Every token keeps its line and column so whatever the
 * importer cannot translate is reported where the operator wrote it.
 */

export interface Token {
  kind: "word" | "string" | "punct";
  /** For a string, the text between the quotes with escapes resolved. */
  text: string;
  line: number;
  col: number;
}

export interface Statement {
  /** The words before `;` or `{`; strings and commas included, in order. */
  words: Token[];
  /** The statements inside `{ … }`, or undefined for a simple statement ended by `;`. */
  block?: Statement[];
  line: number;
  col: number;
}

export class DhcpdSyntaxError extends Error {
  readonly code = "DHCPD_SYNTAX";
  constructor(
    readonly file: string,
    readonly line: number,
    readonly col: number,
    readonly reason: string,
  ) {
    super(`${file}:${line}:${col}: ${reason}`);
    this.name = "DhcpdSyntaxError";
  }
}

const PUNCTUATION = new Set([";", "{", "}", ","]);

/** Split dhcpd.conf text into tokens. Throws DhcpdSyntaxError on an unterminated string. */
export function tokenize(text: string, file = "dhcpd.conf"): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let col = 1;
  let i = 0;
  const advance = (n: number) => {
    for (let k = 0; k < n; k++) {
      if (text[i] === "\n") {
        line++;
        col = 1;
      } else col++;
      i++;
    }
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === "\n" || c === " " || c === "\t" || c === "\r") {
      advance(1);
    } else if (c === "#") {
      while (i < text.length && text[i] !== "\n") advance(1);
    } else if (PUNCTUATION.has(c)) {
      tokens.push({ kind: "punct", text: c, line, col });
      advance(1);
    } else if (c === '"') {
      const start = { line, col };
      advance(1);
      let value = "";
      for (;;) {
        if (i >= text.length) throw new DhcpdSyntaxError(file, start.line, start.col, "unterminated string");
        const d = text[i]!;
        if (d === '"') break;
        if (d === "\\" && i + 1 < text.length) {
          const e = text[i + 1]!;
          value += e === "n" ? "\n" : e === "t" ? "\t" : e;
          advance(2);
          continue;
        }
        value += d;
        advance(1);
      }
      advance(1);
      tokens.push({ kind: "string", text: value, ...start });
    } else {
      const start = { line, col };
      let word = "";
      while (i < text.length && !/[\s;{},"#]/.test(text[i]!)) {
        word += text[i];
        advance(1);
      }
      tokens.push({ kind: "word", text: word, ...start });
    }
  }
  return tokens;
}

/** Parse dhcpd.conf text into its statement tree. Throws DhcpdSyntaxError with the place of the fault. */
export function parseDhcpdConf(text: string, file = "dhcpd.conf"): Statement[] {
  const tokens = tokenize(text, file);
  let at = 0;

  function statements(depth: number, opener: Token | undefined): Statement[] {
    const list: Statement[] = [];
    for (;;) {
      const first = tokens[at];
      if (first === undefined) {
        if (opener) throw new DhcpdSyntaxError(file, opener.line, opener.col, "this { is never closed");
        return list;
      }
      if (first.kind === "punct" && first.text === "}") {
        if (depth === 0) throw new DhcpdSyntaxError(file, first.line, first.col, "} closes nothing");
        at++;
        return list;
      }
      if (first.kind === "punct" && first.text === ";") {
        at++; // an empty statement: dhcpd accepts a stray `;`
        continue;
      }
      const words: Token[] = [];
      for (;;) {
        const token = tokens[at];
        if (token === undefined) {
          const last = words[words.length - 1] ?? first;
          throw new DhcpdSyntaxError(file, last.line, last.col, "statement has no closing ;");
        }
        if (token.kind === "punct" && token.text === ";") {
          at++;
          list.push({ words, line: first.line, col: first.col });
          break;
        }
        if (token.kind === "punct" && token.text === "{") {
          at++;
          const block = statements(depth + 1, token);
          list.push({ words, block, line: first.line, col: first.col });
          break;
        }
        if (token.kind === "punct" && token.text === "}") {
          throw new DhcpdSyntaxError(file, token.line, token.col, `missing ; before }`);
        }
        words.push(token);
        at++;
      }
    }
  }

  return statements(0, undefined);
}

/** The words of a statement as plain text, commas dropped (for matching and messages). */
export function wordsOf(statement: Statement): string[] {
  return statement.words.filter((t) => !(t.kind === "punct" && t.text === ",")).map((t) => t.text);
}

/** The statement as dhcpd.conf text, on one line, for messages. */
export function describeStatement(statement: Statement): string {
  const text = statement.words
    .map((t) => (t.kind === "string" ? JSON.stringify(t.text) : t.text))
    .join(" ")
    .replace(/ ,/g, ",");
  return statement.block ? `${text} { … }` : `${text};`;
}
