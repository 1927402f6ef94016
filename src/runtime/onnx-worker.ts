import { parentPort, workerData } from "node:worker_threads";
import { createOnnxSessions } from "./onnx.js";
import type { ModelName } from "./models.js";

/** A worker thread of the ONNX pool: its own sessions, one run at a time, results transferred back. */
interface RunMessage {
  id: number;
  model: ModelName;
  data: Float32Array | Uint8Array;
  dims: number[];
}

const { intraOpThreads } = workerData as { intraOpThreads: number };
const sessions = createOnnxSessions({ intraOpThreads });

parentPort!.on("message", async (message: RunMessage | { warmUp: ModelName[]; id: number }) => {
  try {
    if ("warmUp" in message) {
      await sessions.warmUp(message.warmUp);
      parentPort!.postMessage({ id: message.id, outputs: {} });
      return;
    }
    const outputs = await sessions.run(message.model, { data: message.data, dims: message.dims });
    parentPort!.postMessage({ id: message.id, outputs }, Object.values(outputs).map((o) => o.data.buffer as ArrayBuffer));
  } catch (e) {
    parentPort!.postMessage({ id: message.id, error: e instanceof Error ? e.message : String(e) });
  }
});
