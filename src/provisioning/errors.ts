import { CentraError } from "../errors.js";

/**
 * The lifecycle's failures, each with the HTTP status the API answers with, so the API maps them
 * without knowing every case.
 */

export interface FieldProblem {
  /** The field as the caller spelled it, e.g. `ipAddress` or `labels.rack`. */
  field: string;
  message: string;
}

/** Bad input: every problem at once, each naming its field (HTTP 400). */
export class ValidationError extends CentraError {
  readonly status = 400;
  constructor(readonly problems: FieldProblem[]) {
    super("INVALID_INPUT", problems.map((p) => `${p.field}: ${p.message}`).join("; "));
  }
}

/** A value another node holds, or a field the config file owns (HTTP 409). */
export class ConflictError extends CentraError {
  readonly status = 409;
  constructor(
    readonly field: string,
    message: string,
  ) {
    super("CONFLICT", `${field}: ${message}`);
  }
}

/** An action the node's state does not allow (HTTP 409). */
export class TransitionRefusedError extends CentraError {
  readonly status = 409;
  constructor(
    readonly nodeId: string,
    readonly action: string,
    readonly state: string,
    reason: string,
  ) {
    super("TRANSITION_REFUSED", `cannot ${action} node ${nodeId}: ${reason}`);
  }
}

/**
 * A refused installer callback: 401 without a token, 403 for a token that is wrong, used,
 * expired or bound to another node.
 */
export class CallbackRejectedError extends CentraError {
  constructor(
    readonly status: 401 | 403 | 409,
    readonly reason: "missing" | "unknown" | "used" | "expired" | "other-node" | "not-provisioning",
    message: string,
  ) {
    super("CALLBACK_REJECTED", message);
  }
}
