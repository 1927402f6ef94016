import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

const ROOT = join(import.meta.dirname, "..");

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => readFileSync(join(e.parentPath, e.name), "utf8"));
}

describe("the README's configuration table", () => {
  it("names every environment variable the service and the CLI read", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const table = readme.slice(readme.indexOf("## Configuration"));
    const read = new Set<string>();
    for (const source of sources("src")) {
      for (const m of source.matchAll(/(?:integer|decimal|boolean|list)\("([A-Z][A-Z0-9_]+)"|env\.([A-Z][A-Z0-9_]{2,})/g)) read.add(m[1] ?? m[2]);
    }
    assert.ok(read.size > 30, `found ${read.size} variables: the scan itself works`);
    const missing = [...read].filter((name) => !table.includes(`\`${name}\``));
    assert.deepEqual(missing, [], "variables missing from the README's Configuration table");
  });
});
