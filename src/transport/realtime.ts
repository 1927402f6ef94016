import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type ConnectRouter } from "@connectrpc/connect";
import websocket from "@fastify/websocket";
import type { WebSocket } from "ws";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { FaceService, SyncRequestSchema, SyncResponseSchema, type SyncRequest, type SyncResponse } from "../../gen/face/v1/face_pb.js";
import { KEY_QUERY_PARAMETER, presentedKey, rateLimitExceeded, REALTIME_PATH, type RateLimit } from "./access.js";
import { clientGone, frameErrorOf, httpError } from "./errors.js";
import { keepWebSocketAlive } from "./keepalive.js";
import type { ReceiveBudget } from "./receive-budget.js";
import { forwardedHeaders, sendError } from "./rest.js";
import { fieldsOfRequest } from "./rest-fields.js";
import { runInCall } from "../call-signal.js";
import { clientOf } from "./client-address.js";
import { decodeBase64 } from "../base64.js";

/** Frames received and not yet answered before the server stops reading the socket (TCP back-pressure). */
const MAX_UNANSWERED_FRAMES = 4;

/** The upgrade request's query parameters: the frames' default collection, and the key (access.ts). */
const QUERY_PARAMETERS = ["collection", KEY_QUERY_PARAMETER];

/** How long a socket refused by the receive budget has to read its close frame before it is destroyed. */
const REFUSED_SOCKET_GRACE_MS = 1_000;

/**
 * Registers WebSocket support. It must come before any onRequest hook that may answer (auth, rate
 * limits): the plugin's own hook marks upgrade requests so that a refused upgrade's socket is
 * destroyed after the answer; registered later, a 401 would leave that socket open forever.
 * Messages over `maxMessageBytes` close the socket with 1009 (message too big). When the server
 * closes, open sockets go on for `shutdownTimeoutMs`, as gRPC streams do, then close with 1001
 * (going away); the plugin's default closes them at once, with no code, frames in flight unanswered.
 * Each socket is pinged every `pingIntervalMs` and closed when silent (keepalive.ts).
 */
export async function registerWebSocketSupport(app: FastifyInstance, maxMessageBytes: number, shutdownTimeoutMs: number, pingIntervalMs: number): Promise<void> {
  await app.register(websocket, {
    options: { maxPayload: maxMessageBytes },
    preClose(done) {
      const server = this.websocketServer;
      server.close();
      setTimeout(() => {
        for (const client of server.clients) client.close(1001, "the server is shutting down");
      }, shutdownTimeoutMs).unref();
      done();
    },
    errorHandler(error, socket, request) {
      if (isClientProtocolError(error)) {
        // The client broke the protocol (an oversized message: closed with 1009): its error, not ours.
        request.log.info({ code: (error as { code?: string }).code, reason: error.message }, "websocket closed for a client protocol error");
      } else {
        request.log.error({ err: error }, "websocket failed");
      }
      socket.terminate();
    },
  });
  app.websocketServer.on("connection", (socket: WebSocket) => keepWebSocketAlive(socket, pingIntervalMs));
}

/** Errors `ws` raises for what a client sent (WS_ERR_*: message too big, bad frames, bad UTF-8). */
export function isClientProtocolError(error: Error): boolean {
  return /^WS_ERR_/.test(String((error as { code?: unknown }).code ?? ""));
}

/**
 * GET /ws/realtime: the bidirectional Sync stream for browsers. Each text message is a JSON frame
 * {"type": "frame", "image": base64, "frame_id", "max_faces", "identifier"}, each binary message the
 * bytes of one image. Every frame gets one answer, in order: {"type": "results", ...SyncResponse
 * fields, "count"} or {"type": "error", "frame_id", "code", "message"}; the socket stays open.
 *
 * Frames go through the same in-process Connect router as gRPC Sync calls, so interceptors (collection
 * scopes per frame, metrics), pipelining and tracking are the same. Auth applies to the upgrade
 * request (the `api_key` query parameter counts there); the rate limit to it and to every frame.
 */
export function registerRealtimeRoute(app: FastifyInstance, routes: (router: ConnectRouter) => void, rateLimit: RateLimit, receiveBudget: ReceiveBudget): void {
  const client = createClient(FaceService, createRouterTransport(routes));

  // A query parameter given twice, or one the socket does not take, is refused before the upgrade, as
  // REST refuses them (upgraded, every frame of `?collection=a&collection=b` was answered "collection
  // must be ...", and a misspelt `?colection=b` watched the default collection).
  const knownOnce = async (request: FastifyRequest, reply: FastifyReply) => {
    for (const [name, value] of Object.entries(request.query as Record<string, unknown>)) {
      if (!QUERY_PARAMETERS.includes(name)) return sendError(reply, request, new ConnectError(`unknown query parameter ${name}; ${REALTIME_PATH} takes ${QUERY_PARAMETERS.join(" and ")}`, Code.InvalidArgument));
      if (Array.isArray(value)) return sendError(reply, request, new ConnectError(`query parameter ${name} is given ${value.length} times; it takes one value`, Code.InvalidArgument));
    }
  };

  // A plain GET (someone checking the URL with curl) is told how to connect, not 404 (@fastify/websocket's default).
  const upgradeRequired = async (request: FastifyRequest, reply: FastifyReply) =>
    sendError(reply.header("upgrade", "websocket"), request, httpError(426, Code.InvalidArgument, `${REALTIME_PATH} is a WebSocket: connect with Upgrade: websocket (ws://host${REALTIME_PATH})`));

  const serveSocket = (socket: WebSocket, request: FastifyRequest): void => {
    const upgrade = request;
    const query = request.query as Record<string, string | undefined>;
    const collection = query.collection ?? "";
    const headers = forwardedHeaders(request);
    const key = presentedKey(request);
    if (key !== undefined) headers["x-api-key"] = key;

    const frames = createAsyncQueue<SyncRequest>();
    /** Answers of frames handed to the stream, in order; resolved as its responses arrive. */
    const awaitingStream: { frameId: string; resolve: (answer: object) => void }[] = [];
    /** One answer per client message, in arrival order: a frame's comes from the stream, a bad message's at once. */
    const answers = createAsyncQueue<Promise<object>>();
    let unanswered = 0;
    let nextFrameNumber = 0;
    const controller = new AbortController();
    let streamFailure: ConnectError | undefined;

    // The socket's bytes count against the receive budget from their arrival until their frame is
    // answered. Counted before ws reads them, so each message's bytes (with its framing, and at most
    // the start of the next message sharing its last chunk) are known when it arrives.
    const caller = clientOf(request);
    const share = receiveBudget.open(upgrade.raw.socket, caller);
    let arriving = 0;
    /** Bytes of each message not yet answered, in order. */
    const heldBytes: number[] = [];
    upgrade.raw.socket.prependListener("data", (chunk: Buffer) => {
      if (socket.readyState !== socket.OPEN) return;
      try {
        share.take(chunk.length);
        arriving += chunk.length;
      } catch (e) {
        // 1013: try again later. Reading stops, so the message being received grows no further, and
        // the connection is ended after the close frame: the client sees the code at once, without
        // a closing handshake this side no longer reads. What it holds goes a second later.
        socket.close(1013, ConnectError.from(e).rawMessage.slice(0, 120));
        socket.pause();
        upgrade.raw.socket.end();
        setTimeout(() => socket.terminate(), REFUSED_SOCKET_GRACE_MS).unref();
      }
    });

    socket.on("message", (data: Buffer, isBinary: boolean) => {
      const frameNumber = nextFrameNumber++;
      heldBytes.push(arriving);
      arriving = 0;
      let request: Omit<SyncRequest, "$typeName" | "$unknown">;
      try {
        request = isBinary ? { image: new Uint8Array(data), frameId: String(frameNumber), identifier: "", maxFaces: 0, collection } : parseFrame(data.toString("utf8"), frameNumber, collection);
      } catch (e) {
        const frameId = e instanceof BadFrame && e.frameId !== undefined ? e.frameId : String(frameNumber);
        answers.push(Promise.resolve(errorMessage(frameId, frameErrorOf(new ConnectError(e instanceof Error ? e.message : String(e), Code.InvalidArgument)))));
        countIn();
        return;
      }
      // Each frame is a call's worth of work: it draws from the client's rate limit like a call.
      const wait = rateLimit.waitBeforeMore(upgrade);
      if (wait > 0) {
        answers.push(Promise.resolve(errorMessage(request.frameId, frameErrorOf(rateLimitExceeded(wait)))));
        countIn();
        return;
      }
      answers.push(new Promise((resolve) => awaitingStream.push({ frameId: request.frameId, resolve })));
      frames.push(request as SyncRequest);
      countIn();
    });
    socket.on("close", () => {
      frames.end();
      answers.end();
      controller.abort(clientGone());
    });

    function countIn(): void {
      if (++unanswered >= MAX_UNANSWERED_FRAMES) socket.pause();
    }

    // The stream: responses come in frame order and resolve the waiting answers in that order. It
    // runs as a call of the socket's client, whose frames' calls are then its (call-signal.ts).
    void runInCall(controller.signal, async () => {
      try {
        for await (const response of client.sync(frames, { headers, signal: controller.signal })) awaitingStream.shift()?.resolve(resultMessage(response));
      } catch (e) {
        if (controller.signal.aborted) return;
        // The whole stream failed (e.g. a frame named a collection the key may not use): what
        // waits is answered with the error, then the writer closes the socket.
        streamFailure = ConnectError.from(e);
        for (const { frameId, resolve } of awaitingStream.splice(0)) resolve(errorMessage(frameId, frameErrorOf(streamFailure)));
        answers.end();
      }
    }, caller);

    // The writer: one answer at a time, in order; a client that does not read holds back the
    // writer (send's callback waits for the socket), then the reader (pause), then TCP.
    void (async () => {
      for await (const pending of answers) {
        const answer = await pending;
        if (socket.readyState !== socket.OPEN) return;
        await new Promise<void>((resolve) => socket.send(JSON.stringify(answer), () => resolve()));
        share.give(heldBytes.shift() ?? 0);
        if (--unanswered < MAX_UNANSWERED_FRAMES && socket.readyState === socket.OPEN) socket.resume();
      }
      if (streamFailure !== undefined) socket.close(1008, streamFailure.rawMessage.slice(0, 120));
    })();
  };

  app.route({ method: "GET", url: REALTIME_PATH, preValidation: knownOnce, handler: upgradeRequired, wsHandler: serveSocket });
}

/** A message that is not a frame; answered with its frame_id when it had one. */
class BadFrame extends Error {
  constructor(message: string, readonly frameId?: string) {
    super(message);
  }
}

function parseFrame(text: string, frameNumber: number, collection: string): Omit<SyncRequest, "$typeName" | "$unknown"> {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    throw new BadFrame("a text message must be JSON: {\"type\": \"frame\", \"image\": \"<base64>\", ...}");
  }
  if (message === null || typeof message !== "object" || Array.isArray(message)) throw new BadFrame("a text message must be a JSON object");
  const { type, image, ...fields } = message as Record<string, JsonValue>;
  const frameIdField = fields.frame_id ?? fields.frameId;
  const frameId = typeof frameIdField === "string" ? frameIdField : undefined;
  if (type !== "frame") throw new BadFrame('a text message must have "type": "frame"', frameId);
  if (typeof image !== "string" || image === "") throw new BadFrame('"image" (base64) is required', frameId);
  // The other fields are read as protobuf JSON reads a SyncRequest (either spelling of a name, each
  // field's type and range): a hand-made reading let a max_faces over 2^32 through, which then
  // failed the whole stream's encoding (internal, socket closed). A name a frame does not have is
  // refused, as REST refuses it: a misspelt one was dropped without a word.
  let request: SyncRequest;
  try {
    const fieldOf = fieldsOfRequest(SyncRequestSchema);
    for (const name of Object.keys(fields)) fieldOf(name, "frame");
    request = fromJson(SyncRequestSchema, fields);
  } catch (e) {
    throw new BadFrame(`invalid frame: ${e instanceof ConnectError ? e.rawMessage : (e as Error).message}`, frameId);
  }
  return { ...request, image: imageOf(image, frameId), frameId: frameId ?? String(frameNumber), collection: request.collection || collection };
}

/** A frame's base64 image (base64.ts). */
function imageOf(text: string, frameId: string | undefined): Uint8Array {
  try {
    return decodeBase64(text);
  } catch {
    throw new BadFrame('"image" is not valid base64 (standard or URL-safe alphabet)', frameId);
  }
}

function resultMessage(response: SyncResponse): object {
  if (response.error !== undefined) return errorMessage(response.frameId, response.error);
  const fields = toJson(SyncResponseSchema, response, { useProtoFieldName: true, alwaysEmitImplicit: true }) as Record<string, unknown>;
  return { type: "results", ...fields, count: response.faces.length };
}

/** An error answer: one JSON frame, the code and message as errors.ts gives them; the socket stays open. */
function errorMessage(frameId: string, error: { code: string; message: string }): object {
  return { type: "error", frame_id: frameId, code: error.code, message: error.message };
}

/** An async iterable fed by push(); end() finishes it after what was pushed. */
function createAsyncQueue<T>(): AsyncIterable<T> & { push(item: T): void; end(): void } {
  const items: T[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  return {
    push(item) {
      if (ended) return;
      items.push(item);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (items.length > 0) yield items.shift()!;
        else if (ended) return;
        else await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
}
