// Entry point of worker threads: Node 20 does not pass the main thread's TypeScript loader (tsx)
// to workers, so each worker registers it before importing its TypeScript module.
import { workerData } from "node:worker_threads";
import { register } from "tsx/esm/api";

register();
await import(workerData.entry);
