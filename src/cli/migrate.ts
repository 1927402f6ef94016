import { loadConfig } from "../config.js";
import { openDatabase } from "../store/database.js";

/** `npm run migrate`: applies pending migrations to the configured database and exits. */
const config = loadConfig();
const database = await openDatabase(config);
process.stdout.write(`migrations applied to the ${database.kind} database\n`);
await database.close();
