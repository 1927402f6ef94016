import { loadConfig } from "../config.js";
import { openDatabase } from "../store/database.js";
import { runTool } from "./tool-errors.js";

/** `npm run migrate`: applies pending migrations to the configured database and exits. */
await runTool(async () => {
  const database = await openDatabase(loadConfig());
  process.stdout.write(`migrations applied to the ${database.kind} database\n`);
  await database.close();
  return 0;
});
