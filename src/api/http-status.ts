import { BmcError } from "../bmc/index.js";
import { HttpError, NotFoundError } from "../errors.js";
import {
  CallbackRejectedError,
  ConflictError,
  TransitionRefusedError,
  ValidationError,
  type CallbackRefusal,
} from "../provisioning/errors.js";

/**
 * Domain errors → HTTP statuses, in one place: the lifecycle says what went wrong (a code), the API
 * says how that looks on the wire.
 */

/** A callback refusal's status: 401 without a token (try again with one), 403 when the token is no good, 409 when it is stale. */
const CALLBACK_STATUS: Readonly<Record<CallbackRefusal, 401 | 403 | 409>> = {
  missing: 401,
  unknown: 403,
  used: 403,
  expired: 403,
  "other-node": 403,
  "not-provisioning": 409,
};

/** The status an error is answered with, or undefined when it is not one of ours (a 500, or Fastify's own). */
export function httpStatusOf(error: unknown): number | undefined {
  if (error instanceof ValidationError) return 400;
  if (error instanceof NotFoundError) return 404;
  if (error instanceof ConflictError || error instanceof TransitionRefusedError) return 409;
  if (error instanceof CallbackRejectedError) return CALLBACK_STATUS[error.reason];
  if (error instanceof HttpError) return error.status;
  // The BMC, not the API, failed: 502 for every kind, told apart by the code (BMC_UNREACHABLE, …).
  if (error instanceof BmcError) return 502;
  return undefined;
}
