import { ErrorCode } from "./packet.js";
import type { TftpOption } from "./packet.js";

/**
 * One read transfer as a pure state machine: `step(state, event) → { state, send, timer }`.
 * The server feeds it ACKs, client errors and timer expiries, and turns its `send` actions into
 * datagrams; tests feed it the same events with a fake clock and a lossy link.
 *
 * Blocks are counted with an absolute index (0 is the OACK, 1 the first DATA) so files longer than
 * 65535 blocks work: the 16-bit block number on the wire wraps to 0 after 65535, as tftp-hpa, iPXE
 * and curl expect, and an incoming ACK is mapped back to the one absolute block it can mean.
 */

export interface TransferConfig {
  /** File size in bytes after mode conversion. */
  size: number;
  blockSize: number;
  windowSize: number;
  /** The OACK to send first, or undefined when the request carried no option we took. */
  optionAck: TftpOption[] | undefined;
  /** The first retransmission delay; doubled on each further one up to `maxTimeoutMs`. */
  initialTimeoutMs: number;
  maxTimeoutMs: number;
  /**
   * The retransmission interval until the client has acknowledged anything, not backed off: short,
   * because until then the address may be forged and the transfer holds a slot of the small
   * unverified budget (admission.ts). A real client answers within a round trip.
   */
  unverifiedTimeoutMs: number;
  /** Retransmissions of the same window before giving up. */
  maxRetries: number;
  /**
   * Retransmissions before the client has acknowledged anything. Kept small: until then the
   * address may be forged, and every resend would be traffic aimed at a victim.
   */
  maxRetriesUnverified: number;
}

export interface TransferState {
  readonly config: TransferConfig;
  /** Number of the last DATA block (a short or empty block ends the transfer, RFC 1350 §6). */
  readonly lastBlock: number;
  /** Highest absolute block the client acknowledged; -1 while an OACK waits for ACK 0. */
  readonly acked: number;
  /** Highest absolute block sent so far. */
  readonly sent: number;
  /** Retransmissions of the current window. */
  readonly retries: number;
  readonly finished: boolean;
}

/** What to put on the wire, in order. `data` is an inclusive range of absolute block numbers. */
export type SendAction =
  | { kind: "oack"; options: TftpOption[] }
  | { kind: "data"; first: number; last: number }
  | { kind: "error"; code: ErrorCode; message: string };

/** `keep` leaves a running retransmission timer alone; a number (re)arms it; `cancel` stops it. */
export type TimerAction = number | "keep" | "cancel";

/**
 * `aborted`: the client ended the transfer with an ERROR. PXE ROMs do this on purpose: many send a
 * first RRQ with `tsize` only to learn the size, answer the OACK with an ERROR, and fetch the file
 * with a second RRQ; that is not a server failure.
 */
export type TransferOutcome =
  | { result: "completed" }
  | { result: "aborted"; reason: string }
  | { result: "failed"; reason: string };

export interface TransferStep {
  state: TransferState;
  send: SendAction[];
  timer: TimerAction;
  /** Set once, on the step that ends the transfer. */
  outcome?: TransferOutcome;
}

export type TransferEvent =
  | { type: "start" }
  | { type: "ack"; block: number }
  | { type: "client-error"; code: number; message: string }
  | { type: "timeout" };

export function createTransfer(config: TransferConfig): TransferState {
  return {
    config,
    lastBlock: Math.floor(config.size / config.blockSize) + 1,
    acked: config.optionAck ? -1 : 0,
    sent: 0,
    retries: 0,
    finished: false,
  };
}

/**
 * The state after a step. Written out field by field rather than spread: this runs once per block,
 * and one object shape for every state keeps it on V8's fast path.
 */
function next(state: TransferState, acked: number, sent: number, retries: number, finished: boolean): TransferState {
  return { config: state.config, lastBlock: state.lastBlock, acked, sent, retries, finished };
}

/** The 16-bit block number that goes on the wire for an absolute block. */
export function wireBlock(absolute: number): number {
  return absolute & 0xffff;
}

/** Byte range of an absolute DATA block inside the file. */
export function blockRange(state: TransferState, block: number): { offset: number; length: number } {
  const offset = (block - 1) * state.config.blockSize;
  return { offset, length: Math.max(0, Math.min(state.config.blockSize, state.config.size - offset)) };
}

/**
 * Whether the client has acknowledged something the server sent (ACK 0 of the OACK, or a DATA
 * block), which a forged source address cannot do.
 */
export function isVerified(state: TransferState): boolean {
  return state.acked > 0 || (state.acked === 0 && state.config.optionAck !== undefined);
}

function retransmitDelay(config: TransferConfig, retries: number): number {
  return Math.min(config.initialTimeoutMs * 2 ** retries, Math.max(config.maxTimeoutMs, config.initialTimeoutMs));
}

/** The next window after `acked`: at most `windowSize` blocks (RFC 7440 §4), never past the last. */
function sendWindow(state: TransferState, acked: number, timer: number): TransferStep {
  const first = acked + 1;
  const last = Math.min(acked + state.config.windowSize, state.lastBlock);
  return {
    state: next(state, acked, last, 0, false),
    send: [{ kind: "data", first, last }],
    timer,
  };
}

export function step(state: TransferState, event: TransferEvent): TransferStep {
  if (state.finished) return { state, send: [], timer: "cancel" };
  switch (event.type) {
    case "start":
      if (state.config.optionAck) {
        return {
          state,
          send: [{ kind: "oack", options: state.config.optionAck }],
          timer: state.config.unverifiedTimeoutMs,
        };
      }
      return sendWindow(state, 0, state.config.unverifiedTimeoutMs);

    case "ack": {
      // Which absolute block can this 16-bit number mean? Only one in [acked, sent] (a window is
      // far smaller than 65536 blocks); anything else is a stray from an older window.
      const distance = (wireBlock(state.sent) - event.block) & 0xffff;
      const block = state.sent - distance;
      if (block <= state.acked) {
        // A duplicate or stale ACK. Answering it would be the Sorcerer's Apprentice bug (RFC 1123
        // §4.2.3.1): every delayed ACK doubling the DATA stream. Only the timer retransmits.
        return { state, send: [], timer: "keep" };
      }
      if (block === state.lastBlock) {
        return {
          state: next(state, block, state.sent, state.retries, true),
          send: [],
          timer: "cancel",
          outcome: { result: "completed" },
        };
      }
      // RFC 7440 §4: an ACK inside the window says the blocks after it were lost or reordered;
      // the next window starts right after it.
      return sendWindow(state, block, state.config.initialTimeoutMs);
    }

    case "client-error":
      return {
        state: next(state, state.acked, state.sent, state.retries, true),
        send: [],
        timer: "cancel",
        outcome: {
          result: "aborted",
          reason: `client sent error ${event.code}: ${event.message}${state.acked < 0 ? " in answer to the OACK (a size probe)" : ""}`,
        },
      };

    case "timeout": {
      const verified = isVerified(state);
      const limit = verified ? state.config.maxRetries : state.config.maxRetriesUnverified;
      if (state.retries >= limit) {
        return {
          state: next(state, state.acked, state.sent, state.retries, true),
          // A client that never answered gets nothing more; one that went quiet mid-transfer is told.
          send: verified ? [{ kind: "error", code: ErrorCode.NotDefined, message: "transfer timed out" }] : [],
          timer: "cancel",
          outcome: {
            result: "failed",
            reason: verified ? `no ACK after block ${state.acked}` : "client never acknowledged",
          },
        };
      }
      const retries = state.retries + 1;
      const send: SendAction[] =
        state.acked < 0
          ? [{ kind: "oack", options: state.config.optionAck ?? [] }]
          : [{ kind: "data", first: state.acked + 1, last: state.sent }];
      const timer = verified ? retransmitDelay(state.config, retries) : state.config.unverifiedTimeoutMs;
      return { state: next(state, state.acked, state.sent, retries, false), send, timer };
    }
  }
}
