import { ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { ERROR_DOMAIN } from "../../src/transport/errors.js";

/**
 * The quality reason code of a failed call, read from its google.rpc.ErrorInfo detail; undefined
 * when the detail is missing or the `x-face-reason` metadata disagrees with it.
 */
export function reasonOf(e: unknown): string | undefined {
  const error = ConnectError.from(e);
  const [info] = error.findDetails(ErrorInfoSchema);
  if (info === undefined || info.domain !== ERROR_DOMAIN) return undefined;
  return error.metadata.get("x-face-reason") === info.reason ? info.reason : undefined;
}
