/**
 * What to answer for a file request, decided from the request headers and the file's size and
 * mtime alone (RFC 9110 §13 conditionals, §14 ranges). Pure, so every case is a table test; the
 * edge in static-file.ts only opens and streams.
 */

export interface FileFacts {
  size: number;
  mtimeMs: number;
}

export interface RequestFacts {
  method: string;
  range?: string | undefined;
  ifNoneMatch?: string | undefined;
  ifModifiedSince?: string | undefined;
  ifRange?: string | undefined;
}

export interface FilePlan {
  status: 200 | 206 | 304 | 416;
  headers: Record<string, string>;
  /** Inclusive byte range to stream; absent when no body goes out (HEAD, 304, 416, empty file). */
  body?: { start: number; end: number };
}

/**
 * A strong validator from size and mtime, as nginx makes it: cheap (no hashing of a 500 MB image
 * per request) and it changes whenever `images add` or an operator replaces the file.
 */
export function etagFor(file: FileFacts): string {
  return `"${Math.floor(file.mtimeMs).toString(16)}-${file.size.toString(16)}"`;
}

export type ParsedRange = { start: number; end: number } | "unsatisfiable" | undefined;

/**
 * One `bytes=` range → inclusive offsets. `undefined` means "ignore the header and send it all",
 * which RFC 9110 §14.2 allows for anything we do not support: other units, malformed headers and
 * multiple ranges (no boot client asks for multipart/byteranges; iPXE and curl send one range).
 */
export function parseRange(header: string | undefined, size: number): ParsedRange {
  if (header === undefined) return undefined;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match) return undefined;
  const [, first = "", last = ""] = match;
  if (first === "" && last === "") return undefined;
  if (first === "") {
    // Suffix range: the last N bytes; a zero-length suffix selects nothing.
    const length = Number(last);
    if (length === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  const end = last === "" ? size - 1 : Number(last);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) return undefined;
  if (last !== "" && end < start) return undefined;
  if (start >= size) return "unsatisfiable";
  return { start, end: Math.min(end, size - 1) };
}

/** RFC 9110 §13.1.2: weak comparison, a list of tags or `*`. */
function noneMatchHits(header: string, etag: string): boolean {
  if (header.trim() === "*") return true;
  const bare = etag.replace(/^W\//, "");
  return header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === bare);
}

function httpDateSeconds(text: string): number | undefined {
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000);
}

export function planFileResponse(request: RequestFacts, file: FileFacts, contentType: string): FilePlan {
  const etag = etagFor(file);
  const lastModified = new Date(Math.floor(file.mtimeMs)).toUTCString();
  const base: Record<string, string> = {
    "content-type": contentType,
    "accept-ranges": "bytes",
    etag,
    "last-modified": lastModified,
  };

  // §13.2.2 order: If-None-Match, else If-Modified-Since (only for GET/HEAD).
  if (request.ifNoneMatch !== undefined) {
    if (noneMatchHits(request.ifNoneMatch, etag)) return { status: 304, headers: withoutBodyHeaders(base) };
  } else if (request.ifModifiedSince !== undefined) {
    const since = httpDateSeconds(request.ifModifiedSince);
    if (since !== undefined && Math.floor(file.mtimeMs / 1000) <= since)
      return { status: 304, headers: withoutBodyHeaders(base) };
  }

  let range = parseRange(request.range, file.size);
  // §13.1.5: a Range conditioned on a validator that no longer matches gets the whole new file,
  // so a resumed download never splices two versions of an image together.
  if (range !== undefined && request.ifRange !== undefined) {
    const condition = request.ifRange.trim();
    const holds =
      condition.startsWith('"') || condition.startsWith("W/") ? condition === etag : condition === lastModified;
    if (!holds) range = undefined;
  }

  const wantsBody = request.method !== "HEAD";
  if (range === "unsatisfiable") {
    return { status: 416, headers: { ...base, "content-range": `bytes */${file.size}`, "content-length": "0" } };
  }
  if (range !== undefined) {
    const length = range.end - range.start + 1;
    return {
      status: 206,
      headers: {
        ...base,
        "content-range": `bytes ${range.start}-${range.end}/${file.size}`,
        "content-length": String(length),
      },
      ...(wantsBody ? { body: range } : {}),
    };
  }
  // Content-Length always: iPXE downloads of unknown length fall back to a much slower path.
  const headers = { ...base, "content-length": String(file.size) };
  return { status: 200, headers, ...(wantsBody && file.size > 0 ? { body: { start: 0, end: file.size - 1 } } : {}) };
}

/** A 304 carries the validators but no representation headers (RFC 9110 §15.4.5). */
function withoutBodyHeaders(headers: Record<string, string>): Record<string, string> {
  const { "content-type": _type, "accept-ranges": _ranges, ...rest } = headers;
  return rest;
}
