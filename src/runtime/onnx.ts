import { Worker } from "node:worker_threads";
import ort from "onnxruntime-node";
import { throwIfCallEnded } from "../call-signal.js";
import { loadModelForSession, type ModelName } from "./models.js";

/** Input of one model run: float32 (NCHW, for most models) or uint8 (image bytes, for models that take them). */
export interface TensorInput {
  data: Float32Array | Uint8Array;
  dims: readonly number[];
}

/** One output of a model run. */
export interface TensorOutput {
  data: Float32Array;
  dims: readonly number[];
}

/** Runs catalogued ONNX models; knows nothing about what the models mean. */
export interface OnnxRuntime {
  /** Runs `model` on one input tensor (every model here has a single input) and returns its outputs by name. */
  run(model: ModelName, input: TensorInput): Promise<Record<string, TensorOutput>>;
  /** Loads the sessions now rather than on first use. */
  warmUp(models: readonly ModelName[]): Promise<void>;
  close(): Promise<void>;
}

export interface OnnxRuntimeOptions {
  /** Threads one operator may use. */
  intraOpThreads: number;
  /**
   * Worker threads running inference. onnxruntime-node runs a session synchronously on the calling
   * thread, so 0 (inference on the event loop) stalls every other request for the whole run.
   */
  workers: number;
}

/** Creates the runtime: a pool of worker threads with their own sessions, or in-thread sessions when workers is 0. */
export function createOnnxRuntime(options: OnnxRuntimeOptions): OnnxRuntime {
  return options.workers > 0 ? createWorkerPool(options.workers, options.intraOpThreads) : createOnnxSessions(options);
}

/** One cached InferenceSession per model, run on the calling thread. */
export function createOnnxSessions(options: { intraOpThreads: number }): OnnxRuntime {
  const sessions = new Map<ModelName, Promise<ort.InferenceSession>>();

  function session(model: ModelName): Promise<ort.InferenceSession> {
    let pending = sessions.get(model);
    if (pending === undefined) {
      pending = loadModelForSession(model).then((bytes) =>
        ort.InferenceSession.create(bytes, {
          intraOpNumThreads: options.intraOpThreads,
          interOpNumThreads: 1,
          graphOptimizationLevel: "all",
          // The package's models list their weights as graph inputs; onnxruntime warns about each one.
          logSeverityLevel: 3,
        }),
      );
      pending.catch(() => sessions.delete(model));
      sessions.set(model, pending);
    }
    return pending;
  }

  return {
    async run(model, input) {
      const s = await session(model);
      const result = await s.run({ [s.inputNames[0]]: input.data instanceof Uint8Array ? new ort.Tensor("uint8", input.data, input.dims) : new ort.Tensor("float32", input.data, input.dims) });
      const outputs: Record<string, TensorOutput> = {};
      for (const [name, tensor] of Object.entries(result)) outputs[name] = { data: tensor.data as Float32Array, dims: tensor.dims };
      return outputs;
    },
    async warmUp(models) {
      await Promise.all(models.map((m) => session(m)));
    },
    async close() {
      const all = [...sessions.values()];
      sessions.clear();
      for (const s of await Promise.allSettled(all)) {
        if (s.status === "fulfilled") await s.value.release();
      }
    },
  };
}

/**
 * Compiled (tsc output, as the Docker image runs), a worker starts from onnx-worker.js. From source
 * (tsx), workers start from a plain .mjs file that loads tsx, then import the TypeScript module.
 */
const COMPILED = import.meta.url.endsWith(".js");
const WORKER_SCRIPT = new URL(COMPILED ? "./onnx-worker.js" : "./typescript-worker.mjs", import.meta.url);
const WORKER_ENTRY = new URL("./onnx-worker.ts", import.meta.url).href;

interface Pending {
  resolve: (outputs: Record<string, TensorOutput>) => void;
  reject: (error: Error) => void;
}

/**
 * Sends each run to the least busy worker; inputs and outputs move as transferred buffers, not copies.
 * Each run keeps to its worker's threads, a call running alone too: sessions spreading one run over
 * both cores of this machine (without spinning between operators, so as not to hold the other
 * worker's core) were slower than one thread for every model and input size once the models lost
 * their PRelus (prelu-rewrite.ts): recogniser 3.79 -> 5.33 ms, detector at 320x256 1.53 -> 2.48, at
 * 640x480 5.53 -> 6.80 (`npm run bench:model-forms`).
 */
function createWorkerPool(size: number, intraOpThreads: number): OnnxRuntime {
  const workers = Array.from({ length: size }, () => {
    const worker = new Worker(WORKER_SCRIPT, { workerData: { entry: WORKER_ENTRY, intraOpThreads } });
    return { worker, busy: 0 };
  });
  const pending = new Map<number, Pending>();
  let nextId = 1;
  for (const w of workers) {
    w.worker.on("message", (message: { id: number; outputs?: Record<string, TensorOutput>; error?: string }) => {
      const p = pending.get(message.id);
      pending.delete(message.id);
      if (--w.busy === 0) w.worker.unref();
      if (message.error !== undefined) p?.reject(new Error(message.error));
      else p?.resolve(message.outputs!);
    });
    w.worker.on("error", (error) => {
      for (const p of pending.values()) p.reject(error);
      pending.clear();
    });
    w.worker.unref(); // after the listeners: adding one refs the worker again
  }

  function send(worker: (typeof workers)[number], message: object, transfer: ArrayBuffer[] = []): Promise<Record<string, TensorOutput>> {
    const id = nextId++;
    // A worker keeps the process alive only while it has work, so an idle pool never blocks exit.
    if (worker.busy++ === 0) worker.worker.ref();
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.worker.postMessage({ ...message, id }, transfer);
    });
  }

  return {
    async run(model, input) {
      // A run queued behind others is not sent for a call whose client gave up.
      throwIfCallEnded();
      const worker = workers.reduce((a, b) => (b.busy < a.busy ? b : a));
      return send(worker, { model, data: input.data, dims: [...input.dims] }, [input.data.buffer as ArrayBuffer]);
    },
    async warmUp(models) {
      await Promise.all(workers.map((w) => send(w, { warmUp: [...models] })));
    },
    async close() {
      await Promise.all(workers.map((w) => w.worker.terminate()));
    },
  };
}
