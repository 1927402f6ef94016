import { parentPort, workerData } from "node:worker_threads";
import { createOnnxSessions } from "./onnx.js";
import type { ModelName } from "./models.js";

/** A worker thread of the ONNX pool: its own sessions, one run at a time, results transferred back. */
interface RunMessage {
  id: number;
  model: ModelName;
  data: Float32Array | Uint8Array;
  dims: number[];
  /** The call runs alone and the pool is otherwise idle: run on the sessions with the whole pool's threads. */
  wide: boolean;
}

const { intraOpThreads, wideThreads } = workerData as { intraOpThreads: number; wideThreads?: number };
const sessions = createOnnxSessions({ intraOpThreads });
const wideSessions = wideThreads === undefined ? sessions : createOnnxSessions({ intraOpThreads: wideThreads, spin: false });

parentPort!.on("message", async (message: RunMessage | { warmUp: ModelName[]; id: number }) => {
  try {
    if ("warmUp" in message) {
      await Promise.all([sessions.warmUp(message.warmUp), wideSessions.warmUp(message.warmUp)]);
      parentPort!.postMessage({ id: message.id, outputs: {} });
      return;
    }
    const outputs = await (message.wide ? wideSessions : sessions).run(message.model, { data: message.data, dims: message.dims });
    parentPort!.postMessage({ id: message.id, outputs }, Object.values(outputs).map((o) => o.data.buffer as ArrayBuffer));
  } catch (e) {
    parentPort!.postMessage({ id: message.id, error: e instanceof Error ? e.message : String(e) });
  }
});
