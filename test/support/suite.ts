import { describe, test } from "node:test";

/**
 * A describe block that may not be able to run here. node:test leaves a skipped suite out of its
 * `# skipped` total, so a skipped one is registered as one skipped test instead: it shows in the
 * totals, and its line says why and how to enable it.
 */
export function describeUnless(skip: string | false, name: string, body: () => void): void {
  if (skip === false) describe(name, body);
  else test(name, { skip: `${skip}` }, () => {});
}
