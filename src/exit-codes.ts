import { ConfigError } from "./config.js";
import { DirectoryInUse } from "./store/directory-lock.js";

/**
 * The exit code of the service or a database tool stopped by `e` before its work: 2 for what the
 * operator must settle first (invalid configuration, a data directory another process holds), 1
 * for anything else (a database that refuses connections, a port taken).
 */
export function exitCodeOf(e: unknown): 1 | 2 {
  return e instanceof ConfigError || e instanceof DirectoryInUse ? 2 : 1;
}
