import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";

/**
 * Rounds every `float` field of a message (nested and repeated ones too) to single precision, in
 * place. The service computes in double precision; protobuf binary carries `float` as 32 bits, so a
 * gRPC or REST client (REST goes through the binary codec in memory) saw 0.15658403933048248 where
 * a Connect JSON client saw 0.15658404595923092. Rounded here, every transport answers one value.
 */
export function roundFloatFields(schema: DescMessage, message: Record<string, unknown>): void {
  for (const field of schema.fields) {
    if (field.oneof !== undefined) {
      const chosen = message[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
      if (chosen?.case === field.localName) chosen.value = rounded(field, chosen.value);
    } else if (field.localName in message) {
      message[field.localName] = rounded(field, message[field.localName]);
    }
  }
}

function rounded(field: DescField, value: unknown): unknown {
  switch (field.fieldKind) {
    case "scalar":
      return field.scalar === ScalarType.FLOAT && typeof value === "number" ? Math.fround(value) : value;
    case "list":
      if (field.listKind === "scalar" && field.scalar === ScalarType.FLOAT) return (value as number[]).map(Math.fround);
      if (field.listKind === "message") for (const item of value as Record<string, unknown>[]) roundFloatFields(field.message, item);
      return value;
    case "message":
      if (value !== undefined) roundFloatFields(field.message, value as Record<string, unknown>);
      return value;
    default:
      return value;
  }
}

/** Rounds the `float` fields of every response message (see roundFloatFields). */
export function createFloat32Interceptor(): Interceptor {
  return (next) => async (req) => {
    const response = await next(req);
    if (!response.stream) {
      roundFloatFields(response.method.output, response.message as unknown as Record<string, unknown>);
      return response;
    }
    const messages = response.message;
    return {
      ...response,
      message: (async function* () {
        for await (const message of messages) {
          roundFloatFields(response.method.output, message as unknown as Record<string, unknown>);
          yield message;
        }
      })(),
    };
  };
}
