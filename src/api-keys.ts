/** One API key and the collections it may use (undefined: every collection). */
export interface ApiKey {
  key: string;
  collections: readonly string[] | undefined;
}

/** Parses FACE_API_KEYS: `key` or `key:collection1|collection2`, comma-separated. */
export function parseApiKeys(raw: string | undefined): ApiKey[] {
  return (raw ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((entry) => {
      const [key, scope] = entry.split(":", 2);
      return { key, collections: scope === undefined ? undefined : scope.split("|").filter((c) => c !== "") };
    });
}
