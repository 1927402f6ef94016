import pino, { type Logger } from "pino";
import type { FastifyRequest } from "fastify";
import { reasonOf } from "./error-reason.js";

/**
 * The service's one logger (pino, as fastify uses it): made before anything else starts, so each
 * start-up step can say what it did and how long it took, then handed to fastify.
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
    serializers: {
      // /ws/realtime takes API keys in the query (browsers cannot set headers): never log them.
      req: (request: FastifyRequest) => ({ method: request.method, url: request.url.replace(/([?&]api_key=)[^&]*/gi, "$1[redacted]"), remoteAddress: request.ip }),
    },
  });
}

/**
 * Runs one start-up step and logs it with its duration (and what it returns to say, if anything);
 * a step that fails is logged as fatal, naming the step and the reason, and its error passed on.
 */
export async function startupStep<T>(logger: Logger, step: string, work: () => Promise<T>, describe: (result: T) => object = () => ({})): Promise<T> {
  const start = performance.now();
  let result: T;
  try {
    result = await work();
  } catch (e) {
    logger.fatal({ step, err: e }, `start-up failed: ${step}: ${reasonOf(e)}`);
    throw e;
  }
  logger.info({ step, ms: Math.round(performance.now() - start), ...describe(result) }, `start-up: ${step}`);
  return result;
}
