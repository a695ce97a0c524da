import type { TftpOption } from "./packet.js";

/**
 * RFC 2347 option negotiation for a read request: which of the client's options the server takes,
 * and the OACK that says so. Pure.
 */

/** RFC 1350 §2: without a `blksize` option every DATA block carries 512 bytes. */
export const DEFAULT_BLOCK_SIZE = 512;
/**
 * RFC 2348 §2 allows `blksize` 8-65464, and lets the server ignore the option. Below 512 it is
 * treated as not requested: the OACK leaves it out and the transfer uses 512. No boot firmware asks
 * for less, and `blksize 8` would make the server frame a file as 12-byte datagrams (1.5× its size,
 * a datagram per 8 bytes), work an attacker gets for one small RRQ.
 */
export const MIN_BLOCK_SIZE = DEFAULT_BLOCK_SIZE;
export const MAX_BLOCK_SIZE = 65464;
/** RFC 2349 §2: valid `timeout` values, in seconds. */
export const MIN_TIMEOUT_S = 1;
export const MAX_TIMEOUT_S = 255;
/** RFC 7440 §3: valid `windowsize` values. */
export const MIN_WINDOW = 1;
export const MAX_WINDOW = 65535;

export interface NegotiationLimits {
  /** The largest `blksize` granted (RFC 2348 lets the server answer a smaller value). */
  maxBlockSize: number;
  /** The largest `windowsize` granted (RFC 7440 §3 lets the server answer a smaller value). */
  maxWindowSize: number;
  /**
   * The largest `timeout` acknowledged, in seconds. RFC 2349 §2 allows up to 255, and the server
   * must answer the client's value or leave the option out; a larger one is left out (the server's
   * own backed-off timer applies), so a client that acknowledges once and goes quiet cannot hold a
   * transfer for 255 s × every retry.
   */
  maxClientTimeoutS: number;
}

export const DEFAULT_LIMITS: NegotiationLimits = {
  maxBlockSize: MAX_BLOCK_SIZE,
  maxWindowSize: 64,
  maxClientTimeoutS: 10,
};

export interface TransferParameters {
  blockSize: number;
  windowSize: number;
  /** The client's `timeout` in ms when it asked for one, else undefined (the server picks). */
  timeoutMs: number | undefined;
  /** The options to put in the OACK, in the client's order; empty means no OACK (RFC 2347 §4). */
  acknowledged: TftpOption[];
}

/** A decimal option value, or undefined when it is not a plain non-negative integer. */
function parseDecimal(value: string): number | undefined {
  if (!/^[0-9]{1,10}$/.test(value)) return undefined;
  return Number(value);
}

/**
 * Decide the transfer parameters for a read of a file of `size` bytes (after mode conversion).
 * Options the server does not know, and values out of range, are left out of the OACK, which
 * RFC 2347 §4 says the client must then treat as refused; the transfer proceeds with the defaults.
 */
export function negotiate(
  options: readonly TftpOption[],
  size: number,
  limits: NegotiationLimits = DEFAULT_LIMITS,
): TransferParameters {
  const result: TransferParameters = {
    blockSize: DEFAULT_BLOCK_SIZE,
    windowSize: 1,
    timeoutMs: undefined,
    acknowledged: [],
  };
  const seen = new Set<string>();
  for (const { name, value } of options) {
    const key = name.toLowerCase();
    // RFC 2347 does not allow an option twice; honouring the first keeps the answer unambiguous.
    if (seen.has(key)) continue;
    seen.add(key);
    const n = parseDecimal(value);
    switch (key) {
      case "blksize":
        if (n === undefined || n < MIN_BLOCK_SIZE) break;
        // RFC 2348 §2: a larger request may be answered with a smaller value.
        result.blockSize = Math.min(n, MAX_BLOCK_SIZE, limits.maxBlockSize);
        result.acknowledged.push({ name, value: String(result.blockSize) });
        break;
      case "timeout":
        // RFC 2349 §2: the server must answer the same value or not acknowledge the option.
        if (n === undefined || n < MIN_TIMEOUT_S || n > Math.min(MAX_TIMEOUT_S, limits.maxClientTimeoutS)) break;
        result.timeoutMs = n * 1000;
        result.acknowledged.push({ name, value: String(n) });
        break;
      case "tsize":
        // RFC 2349 §4: in a read request the client sends 0 and the server answers the size. The
        // value is not used otherwise, so it cannot make the server do more.
        if (n === undefined) break;
        result.acknowledged.push({ name, value: String(size) });
        break;
      case "windowsize":
        // Capped by maxWindowSize; a window larger than one block is only ever sent after the
        // client acknowledged the OACK (an OACK always comes first when windowsize is taken).
        if (n === undefined || n < MIN_WINDOW || n > MAX_WINDOW) break;
        result.windowSize = Math.min(n, limits.maxWindowSize);
        result.acknowledged.push({ name, value: String(result.windowSize) });
        break;
      default:
        // RFC 2347 §2: unknown options are ignored (multicast, utimeout, rollover…).
        break;
    }
  }
  return result;
}
