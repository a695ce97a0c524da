/** Small pure parsers shared by the config schema and the protocol parts. */

/** Parse dotted-quad IPv4 to a 32-bit unsigned number, or undefined when it is not one. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value >>> 0;
}

export function formatIpv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join(".");
}

/**
 * Normalise a MAC written with `:`, `-`, `.` or no separator, in any case, to `aa:bb:cc:dd:ee:ff`.
 * Operators copy MACs from BMC web pages, switch tables and labels, each with its own notation.
 */
export function normalizeMac(text: string): string | undefined {
  const hex = text
    .trim()
    .toLowerCase()
    .replace(/[:\-.]/g, "");
  if (!/^[0-9a-f]{12}$/.test(hex)) return undefined;
  // Separators, when present, must be regular: 52:54:00:… / 52-54-00-… / 5254.0012.3456.
  if (
    !/^([0-9a-f]{2}([:-]?)[0-9a-f]{2}(\2[0-9a-f]{2}){4}|[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4})$/.test(
      text.trim().toLowerCase(),
    )
  ) {
    return undefined;
  }
  return hex.match(/../g)!.join(":");
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parse `10s`, `1h`, `1h30m`, `250ms` to milliseconds; a bare number is seconds. */
export function parseDuration(text: string | number): number | undefined {
  if (typeof text === "number") return Number.isFinite(text) && text >= 0 ? text * 1000 : undefined;
  const trimmed = text.trim();
  if (/^[0-9]+$/.test(trimmed)) return Number(trimmed) * 1000;
  const re = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)/y;
  let total = 0;
  let matched = 0;
  while (re.lastIndex < trimmed.length) {
    const m = re.exec(trimmed);
    if (!m) return undefined;
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    matched++;
  }
  return matched > 0 ? Math.round(total) : undefined;
}

/** Number of leading one bits of a contiguous netmask, or undefined for a non-contiguous one. */
export function prefixLength(mask: number): number | undefined {
  const inverted = ~mask >>> 0;
  if ((inverted & (inverted + 1)) !== 0) return undefined;
  return 32 - Math.log2(inverted + 1);
}

export function inSubnet(address: number, subnet: number, mask: number): boolean {
  return (address & mask) >>> 0 === (subnet & mask) >>> 0;
}

/**
 * Edit distance counting a swap of two neighbouring letters as one edit (optimal string alignment),
 * for "did you mean" hints on unknown keys: `rnage` is one slip from `range`, not two.
 */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = best;
    }
  }
  return rows[a.length]![b.length]!;
}

/**
 * The candidate `word` is most likely a slip of, or undefined when none is close enough to be one:
 * a short word gets one edit, a longer one two, a long one three. Anything looser offers `boot`
 * for `foo`, and a wrong hint costs the operator more than none.
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const allowed = word.length <= 4 ? 1 : word.length <= 10 ? 2 : 3;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= allowed ? best : undefined;
}

/**
 * The ports the Fetch standard calls "bad" (fetch.spec.whatwg.org, "port blocking"): Node's `fetch`
 * (undici) refuses them before connecting, so an HTTP server on one is out of reach of every CLI
 * command that talks to it (`nodes`, `doctor`) and of browsers, while iPXE and firmware reach it.
 */
export const FETCH_BAD_PORTS: ReadonlySet<number> = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110,
  111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532,
  540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061,
  6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

/** The broadcast address of `subnet`/`mask`: every host bit set. */
export function broadcastOf(subnet: number, mask: number): number {
  return ((subnet & mask) | ~mask) >>> 0;
}

/** Milliseconds as `parseDuration` reads them back: `1h30m`, `10s`, `7d`, `250ms`; 0 is `0s`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  let rest = Math.round(ms);
  let text = "";
  for (const [unit, size] of [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
    ["ms", 1],
  ] as const) {
    if (rest >= size) {
      text += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return text;
}

/**
 * A socket's remote address as the dotted quad we hand out: `::ffff:10.0.0.5` (an IPv4 client on a
 * dual-stack socket) is `10.0.0.5`; anything else is returned as it is.
 */
export function unmappedAddress(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

/**
 * `http://host`, with `:port` only when it is not HTTP's own 80 (HTTPS: `https://host`, 443):
 * every URL we hand out or call.
 */
export function httpOrigin(host: string, port: number, scheme: "http" | "https" = "http"): string {
  const standard = scheme === "https" ? 443 : 80;
  return `${scheme}://${host}${port === standard ? "" : `:${port}`}`;
}
