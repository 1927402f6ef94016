import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { describe, it } from "node:test";

const SRC = join(import.meta.dirname, "..", "src");

/** Every source file of src/ and the src/ files it imports (type imports too). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const entry of readdirSync(SRC, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith(".ts")) continue;
    const file = join(entry.parentPath, entry.name);
    const text = readFileSync(file, "utf8");
    const targets = [...text.matchAll(/(?:import|export)[^;]*?from\s+"(\.[^"]+)"/g)]
      .map((m) => normalize(join(dirname(file), m[1])).replace(/\.js$/, ".ts"))
      .filter((t) => t.startsWith(SRC));
    graph.set(relative(SRC, file), targets.map((t) => relative(SRC, t)));
  }
  return graph;
}

/** What each layer must not import (DESIGN.md: engine pure, adapters at the edge). */
const FORBIDDEN: Record<string, string[]> = {
  engine: ["transport/", "store/", "service/", "config.ts", "app.ts"],
  runtime: ["transport/", "store/", "service/", "engine/"],
  store: ["transport/", "engine/", "service/"],
  service: ["transport/"],
};

describe("the shape of src/", () => {
  const graph = importGraph();

  it("has no import cycle", () => {
    const state = new Map<string, "open" | "done">();
    const cycles: string[] = [];
    const visit = (file: string, path: string[]) => {
      state.set(file, "open");
      for (const next of graph.get(file) ?? []) {
        if (state.get(next) === "open") cycles.push([...path.slice(path.indexOf(next)), next].join(" -> "));
        else if (!state.has(next)) visit(next, [...path, next]);
      }
      state.set(file, "done");
    };
    for (const file of graph.keys()) if (!state.has(file)) visit(file, [file]);
    assert.deepEqual(cycles, []);
  });

  it("never imports upward: engine and runtime from no adapter, store from no service, service from no transport, config from no layer", () => {
    const upward: string[] = [];
    for (const [file, targets] of graph) {
      const layer = file.includes("/") ? file.split("/")[0] : file;
      for (const target of targets) {
        if ((FORBIDDEN[layer] ?? []).some((prefix) => target.startsWith(prefix))) upward.push(`${file} -> ${target}`);
        if (layer === "config.ts" && target.includes("/")) upward.push(`${file} -> ${target}`);
      }
    }
    assert.deepEqual(upward, []);
  });

  it("keeps every file at 300 lines or fewer", () => {
    const long = [...graph.keys()].map((f) => [f, readFileSync(join(SRC, f), "utf8").split("\n").length] as const).filter(([, n]) => n > 300);
    assert.deepEqual(long, []);
  });
});
