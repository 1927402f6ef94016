import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { FaceService, SyncRequestSchema, SyncResponse } from "../../gen/face/v1/face_pb.js";

type SyncRequestInit = MessageInitShape<typeof SyncRequestSchema>;

/**
 * A request stream the test feeds one frame at a time, so it can wait for each answer before
 * sending the next (proving the server answers without waiting for the stream to end).
 */
export function requestQueue() {
  const waiting: ((r: SyncRequestInit | undefined) => void)[] = [];
  const queued: (SyncRequestInit | undefined)[] = [];
  const push = (r: SyncRequestInit | undefined) => (waiting.length ? waiting.shift()!(r) : queued.push(r));
  const next = () => (queued.length ? Promise.resolve(queued.shift()) : new Promise<SyncRequestInit | undefined>((r) => waiting.push(r)));
  return {
    send: (request: SyncRequestInit) => push(request),
    end: () => push(undefined),
    iterable: (async function* () {
      for (let r = await next(); r !== undefined; r = await next()) yield r;
    })(),
  };
}

/**
 * A Sync stream of `client` driven one frame at a time: `frame` sends one and resolves with its
 * answer; `end` ends the requests; `done` resolves whether the server then ended the stream too.
 */
export function frameByFrame(client: Client<typeof FaceService>) {
  const queue = requestQueue();
  const answers = client.sync(queue.iterable)[Symbol.asyncIterator]();
  return {
    async frame(request: SyncRequestInit): Promise<SyncResponse> {
      queue.send(request);
      return (await answers.next()).value as SyncResponse;
    },
    end: () => queue.end(),
    done: async () => (await answers.next()).done === true,
  };
}
