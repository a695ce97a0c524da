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

/** Levenshtein distance, for "did you mean" hints on unknown keys. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}
