import { test } from "node:test";
import assert from "node:assert/strict";
import { etagFor, parseRange, planFileResponse } from "./file-response.js";

const file = { size: 1000, mtimeMs: Date.UTC(2026, 0, 2, 3, 4, 5, 678) };
const etag = etagFor(file);
const lastModified = new Date(Math.floor(file.mtimeMs)).toUTCString();

test("range parsing (RFC 9110 §14.1.2)", () => {
  const table: [string | undefined, number, ReturnType<typeof parseRange>][] = [
    [undefined, 1000, undefined],
    ["bytes=0-99", 1000, { start: 0, end: 99 }],
    ["bytes=100-", 1000, { start: 100, end: 999 }],
    ["bytes=-100", 1000, { start: 900, end: 999 }],
    ["bytes=-5000", 1000, { start: 0, end: 999 }],
    ["bytes=990-5000", 1000, { start: 990, end: 999 }],
    ["BYTES=1-1", 1000, { start: 1, end: 1 }],
    ["bytes=1000-", 1000, "unsatisfiable"],
    ["bytes=-0", 1000, "unsatisfiable"],
    ["bytes=0-0", 0, "unsatisfiable"],
    ["bytes=5-1", 1000, undefined],
    ["bytes=0-1,5-6", 1000, undefined],
    ["items=0-1", 1000, undefined],
    ["bytes=-", 1000, undefined],
    ["bytes=abc", 1000, undefined],
  ];
  for (const [header, size, expected] of table) assert.deepEqual(parseRange(header, size), expected, String(header));
});

test("a plain GET sends everything with Content-Length, ETag and Last-Modified", () => {
  const plan = planFileResponse({ method: "GET" }, file, "application/octet-stream");
  assert.equal(plan.status, 200);
  assert.deepEqual(plan.body, { start: 0, end: 999 });
  assert.equal(plan.headers["content-length"], "1000");
  assert.equal(plan.headers["accept-ranges"], "bytes");
  assert.equal(plan.headers.etag, etag);
  assert.equal(plan.headers["last-modified"], lastModified);
});

test("HEAD has the same headers and no body", () => {
  const plan = planFileResponse({ method: "HEAD" }, file, "application/octet-stream");
  assert.equal(plan.status, 200);
  assert.equal(plan.body, undefined);
  assert.equal(plan.headers["content-length"], "1000");
});

test("a range is 206 with Content-Range; past the end is 416", () => {
  const partial = planFileResponse({ method: "GET", range: "bytes=10-19" }, file, "x");
  assert.equal(partial.status, 206);
  assert.equal(partial.headers["content-range"], "bytes 10-19/1000");
  assert.equal(partial.headers["content-length"], "10");
  assert.deepEqual(partial.body, { start: 10, end: 19 });
  const beyond = planFileResponse({ method: "GET", range: "bytes=2000-" }, file, "x");
  assert.equal(beyond.status, 416);
  assert.equal(beyond.headers["content-range"], "bytes */1000");
  assert.equal(beyond.body, undefined);
});

test("If-None-Match and If-Modified-Since give 304", () => {
  assert.equal(planFileResponse({ method: "GET", ifNoneMatch: etag }, file, "x").status, 304);
  assert.equal(planFileResponse({ method: "GET", ifNoneMatch: `"other", W/${etag}` }, file, "x").status, 304);
  assert.equal(planFileResponse({ method: "GET", ifNoneMatch: "*" }, file, "x").status, 304);
  assert.equal(planFileResponse({ method: "GET", ifNoneMatch: '"other"' }, file, "x").status, 200);
  assert.equal(planFileResponse({ method: "GET", ifModifiedSince: lastModified }, file, "x").status, 304);
  assert.equal(
    planFileResponse({ method: "GET", ifModifiedSince: new Date(file.mtimeMs - 10_000).toUTCString() }, file, "x")
      .status,
    200,
  );
  // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
  assert.equal(
    planFileResponse({ method: "GET", ifNoneMatch: '"other"', ifModifiedSince: lastModified }, file, "x").status,
    200,
  );
  const notModified = planFileResponse({ method: "GET", ifNoneMatch: etag }, file, "x");
  assert.equal(notModified.body, undefined);
  assert.equal(notModified.headers.etag, etag);
});

test("If-Range: a stale validator turns the range into the whole file", () => {
  assert.equal(planFileResponse({ method: "GET", range: "bytes=0-9", ifRange: etag }, file, "x").status, 206);
  assert.equal(planFileResponse({ method: "GET", range: "bytes=0-9", ifRange: lastModified }, file, "x").status, 206);
  assert.equal(planFileResponse({ method: "GET", range: "bytes=0-9", ifRange: '"stale"' }, file, "x").status, 200);
});

test("an empty file is 200 with Content-Length 0 and nothing to stream", () => {
  const plan = planFileResponse({ method: "GET" }, { size: 0, mtimeMs: 0 }, "x");
  assert.equal(plan.status, 200);
  assert.equal(plan.headers["content-length"], "0");
  assert.equal(plan.body, undefined);
});
