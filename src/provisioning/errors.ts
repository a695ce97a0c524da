import { CentraError } from "../errors.js";

/**
 * The lifecycle's failures. Each carries a stable `code` (and the callback refusal its `reason`);
 * what HTTP status a code becomes is the API's business (src/api/http-status.ts).
 */

export interface FieldProblem {
  /** The field as the caller spelled it, e.g. `ipAddress` or `labels.rack`. */
  field: string;
  message: string;
}

/** Bad input: every problem at once, each naming its field. */
export class ValidationError extends CentraError {
  constructor(readonly problems: FieldProblem[]) {
    super("INVALID_INPUT", problems.map((p) => `${p.field}: ${p.message}`).join("; "));
  }
}

/** A value another node holds, or a field the config file owns. */
export class ConflictError extends CentraError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super("CONFLICT", `${field}: ${message}`);
  }
}

/** An action the node's state does not allow. */
export class TransitionRefusedError extends CentraError {
  constructor(
    readonly nodeId: string,
    readonly action: string,
    readonly state: string,
    reason: string,
  ) {
    super("TRANSITION_REFUSED", `cannot ${action} node ${nodeId}: ${reason}`);
  }
}

/** Why an installer callback was refused. */
export type CallbackRefusal = "missing" | "unknown" | "used" | "expired" | "other-node" | "not-provisioning";

/** A refused installer callback: no token, or one that is wrong, used, expired or bound to another node. */
export class CallbackRejectedError extends CentraError {
  constructor(
    readonly reason: CallbackRefusal,
    message: string,
  ) {
    super("CALLBACK_REJECTED", message);
  }
}
