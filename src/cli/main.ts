/**
 * The command-line tool: bulk import, export, list and delete, against a running service.
 *
 *   npm run cli -- import <folder>            one sub-folder per person, named by the identifier
 *   npm run cli -- export <identifier> [--out file.json]
 *   npm run cli -- delete <identifier>...
 *   npm run cli -- list
 *
 * Options: --server URL (FACE_SERVER_URL, default http://127.0.0.1:8080), --collection NAME,
 * --api-key KEY (FACE_API_KEY), --concurrency N (import; default 2).
 */
import { open } from "node:fs/promises";
import { parseArgs } from "node:util";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ExportUserResponseSchema, FaceService } from "../../gen/face/v1/face_pb.js";
import { importFolder } from "./import-folder.js";
import { retryWhenTold } from "./retry-after.js";
import { errorLine } from "./tool-errors.js";
import { messageToJson } from "../transport/proto-json.js";
import { OWNER_ONLY_FILE } from "../store/owner-only.js";

const USAGE = `usage: npm run cli -- <command> [options]
  import <folder>               register every photo of <folder>/<identifier>/*
  export <identifier>           everything stored about a person, as JSON (--out file)
  delete <identifier>...        delete people with their faces, photos and logs
  list                          every identifier of the collection
options: --server URL  --collection NAME  --api-key KEY  --concurrency N  --out FILE`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      server: { type: "string", default: process.env.FACE_SERVER_URL ?? "http://127.0.0.1:8080" },
      collection: { type: "string", default: "" },
      "api-key": { type: "string", default: process.env.FACE_API_KEY ?? "" },
      concurrency: { type: "string", default: "2" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [command, ...args] = positionals;
  if (values.help || command === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const apiKey = values["api-key"];
  const withKey: Interceptor = (next) => (req) => {
    if (apiKey !== "") req.header.set("x-api-key", apiKey);
    return next(req);
  };
  const client = createClient(FaceService, createGrpcTransport({ baseUrl: values.server, interceptors: [withKey, retryWhenTold] }));
  const collection = values.collection;

  switch (command) {
    case "import": {
      if (args.length !== 1) throw new UsageError("import takes one folder");
      const concurrency = Number(values.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new UsageError("--concurrency must be a whole number from 1 to 64");
      const summary = await importFolder(client, args[0], { collection, concurrency });
      for (const r of summary.refused) process.stderr.write(`refused: ${r.file} (${r.reason})\n`);
      for (const file of summary.passedOver) process.stderr.write(`passed over: ${file} (not an image)\n`);
      const passedOver = summary.passedOver.length > 0 ? `; ${summary.passedOver.length} other files passed over` : "";
      process.stdout.write(`${summary.people} people, ${summary.photos} photos: ${summary.registered} registered, ${summary.refused.length} refused${passedOver}\n`);
      if (summary.peopleMissing.length > 0) process.stdout.write(`not registered at all: ${summary.peopleMissing.join(", ")}\n`);
      return summary.peopleMissing.length > 0 ? 1 : 0;
    }
    case "export": {
      if (args.length !== 1) throw new UsageError("export takes one identifier");
      // The service answers in pages (under gRPC's default message limit); the file holds them all as one.
      const whole = await client.exportUser({ identifier: args[0], collection });
      for (let token = whole.nextPageToken; token !== ""; ) {
        const page = await client.exportUser({ identifier: args[0], collection, pageToken: token });
        whole.faces.push(...page.faces);
        whole.detections.push(...page.detections);
        token = page.nextPageToken;
      }
      whole.nextPageToken = "";
      // Photos' base64 by Buffer (proto-json.ts): protobuf-es's JavaScript base64 took ~130 ms a megabyte.
      const json = JSON.stringify(messageToJson(ExportUserResponseSchema, whole), null, 2);
      if (values.out !== undefined) await writeOwnerOnly(values.out, `${json}\n`);
      else process.stdout.write(`${json}\n`);
      return 0;
    }
    case "delete": {
      if (args.length === 0) throw new UsageError("delete takes one or more identifiers");
      // An unknown identifier among several does not keep the others from being deleted.
      let missing = 0;
      for (const identifier of args) {
        try {
          const deleted = await client.deleteUser({ identifier, collection });
          process.stdout.write(`deleted ${deleted.identifier}: ${deleted.facesDeleted} faces, ${deleted.imagesDeleted} images\n`);
        } catch (e) {
          const error = ConnectError.from(e);
          if (error.code !== Code.NotFound) throw e;
          process.stderr.write(`error: ${error.message}\n`);
          missing++;
        }
      }
      return missing > 0 ? 1 : 0;
    }
    case "list": {
      let pageToken = "";
      do {
        const page = await client.listUsers({ collection, pageSize: 1000, pageToken });
        for (const identifier of page.identifiers) process.stdout.write(`${identifier}\n`);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

class UsageError extends Error {}

/**
 * Writes biometric data (photos, embeddings) to a file only its owner may read: a mode given when
 * opening applies only to a file it creates, so an existing file readable by all kept that mode
 * until 2026-12-07. The mode is set before anything is written.
 */
async function writeOwnerOnly(path: string, text: string): Promise<void> {
  const file = await open(path, "w", OWNER_ONLY_FILE);
  try {
    await file.chmod(OWNER_ONLY_FILE);
    await file.writeFile(text);
  } finally {
    await file.close();
  }
}

// A reader that stops early (`list | head`) is done with the output, not a failure; the write's
// EPIPE came as an unhandled error event with a stack trace and exit 1.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code !== "EPIPE") throw e;
  process.exit(0);
});

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError || (e instanceof Error && e.name === "TypeError" && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS"))) {
      process.stderr.write(`${e.message}\n${USAGE}\n`);
      process.exit(2);
    }
    process.stderr.write(`${errorLine(e)}\n`);
    process.exit(1);
  },
);
