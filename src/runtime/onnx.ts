import ort from "onnxruntime-node";
import { loadModelBytes, type ModelName } from "./models.js";

export type Tensor = ort.Tensor;

/** Float32 input of one model run, NCHW. */
export interface TensorInput {
  data: Float32Array;
  dims: readonly number[];
}

/** Runs catalogued ONNX models; knows nothing about what the models mean. */
export interface OnnxRuntime {
  /** Runs `model` on one input tensor (every model here has a single input) and returns its outputs by name. */
  run(model: ModelName, input: TensorInput): Promise<Record<string, Tensor>>;
  /** Loads the sessions now rather than on first use. */
  warmUp(models: readonly ModelName[]): Promise<void>;
  close(): Promise<void>;
}

export interface OnnxRuntimeOptions {
  /** Threads one operator may use. */
  intraOpThreads: number;
}

/** Creates a runtime holding one cached InferenceSession per model. */
export function createOnnxRuntime(options: OnnxRuntimeOptions): OnnxRuntime {
  const sessions = new Map<ModelName, Promise<ort.InferenceSession>>();

  function session(model: ModelName): Promise<ort.InferenceSession> {
    let pending = sessions.get(model);
    if (pending === undefined) {
      pending = loadModelBytes(model).then((bytes) =>
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
      const tensor = new ort.Tensor("float32", input.data, input.dims);
      return s.run({ [s.inputNames[0]]: tensor });
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
