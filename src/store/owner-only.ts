import { chmod, mkdir, stat } from "node:fs/promises";

/** Directories holding biometric data: this process's user alone may list, enter or read them. */
export const OWNER_ONLY_DIRECTORY = 0o700;
/** Files of biometric data (a stored photo). */
export const OWNER_ONLY_FILE = 0o600;

/**
 * Makes `path` (and any parent it has to make) a directory its owner alone may enter, or takes an
 * existing one that others may enter down to that: photos and database files made with the
 * process's umask (0755 and 0644 until 2026-12-07) were readable by every local user. A directory
 * enclosing them closes everything below it, whatever mode older files kept. One that others may
 * not enter but its group may (0750) was made so on purpose (a backup user, as PostgreSQL allows
 * for its own data directory) and is left so.
 */
export async function ownerOnlyDirectory(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: OWNER_ONLY_DIRECTORY });
  if (((await stat(path)).mode & 0o007) !== 0) await chmod(path, OWNER_ONLY_DIRECTORY);
}
