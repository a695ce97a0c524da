/**
 * The checks that must see the URL as it came off the wire, before any decoding: once `%2e%2e%2f`
 * has become `../`, or `%2f` has become a separator inside one route parameter, a later check can
 * no longer tell a request for a file from a request to climb out of the root. Returns why the
 * path is refused, or undefined when it may proceed to routing (and to safe-path's own checks).
 */
export function refusedRawPath(rawUrl: string): string | undefined {
  const queryStart = rawUrl.indexOf("?");
  const path = queryStart === -1 ? rawUrl : rawUrl.slice(0, queryStart);
  if (/%(2e|2f|5c|00)/i.test(path)) return "percent-encoded dot, slash, backslash or NUL";
  if (path.includes("\\")) return "backslash";
  if (path.includes("\0")) return "NUL";
  if (/[\x00-\x1f\x7f]/.test(path)) return "control character";
  for (const segment of path.split("/")) {
    if (segment === ".." || segment === ".") return "dot segment";
  }
  return undefined;
}
