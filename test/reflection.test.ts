import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ServerReflection, type ServerReflectionResponse } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { face } from "./support/testdata.js";
import { startTestServer, type TestServer } from "./support/server.js";

/** The buf CLI of the devDependency: a client we did not write, with no proto files given. */
const BUF = join(import.meta.dirname, "..", "node_modules", ".bin", "buf");
const bufCurl = async (...args: string[]) => (await promisify(execFile)(BUF, ["curl", "--http2-prior-knowledge", ...args], { maxBuffer: 16 * 1024 * 1024 })).stdout;

describe("server reflection", () => {
  let server: TestServer;
  let work: string;
  before(async () => {
    server = await startTestServer();
    work = await mkdtemp(join(tmpdir(), "face-reflection-"));
  });
  after(async () => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  });

  it("lets buf curl list every method, over grpc.reflection.v1 and v1alpha", async () => {
    for (const version of ["grpc-v1", "grpc-v1alpha"]) {
      const methods = (await bufCurl("--reflect-protocol", version, "--list-methods", server.url)).trim().split("\n");
      for (const m of ["face.v1.FaceService/Recognize", "face.v1.FaceService/Sync", "grpc.health.v1.Health/Check", "grpc.reflection.v1.ServerReflection/ServerReflectionInfo"]) {
        assert.ok(methods.includes(m), `${version}: ${m} in ${methods.join(", ")}`);
      }
    }
  });

  it("lets buf curl call FaceService through reflection alone", async () => {
    const body = join(work, "register.json");
    await writeFile(body, JSON.stringify({ identifier: "obama", image: Buffer.from(face("face_recognition/obama.jpg")).toString("base64") }));
    const registered = JSON.parse(await bufCurl("--protocol", "grpc", "-d", `@${body}`, `${server.url}/face.v1.FaceService/Register`));
    assert.equal(registered.identifier, "obama");
    assert.equal(registered.created, true);
    assert.deepEqual(JSON.parse(await bufCurl("-d", "{}", `${server.url}/face.v1.FaceService/ListUsers`)).identifiers, ["obama"]);
  });

  it("answers files by symbol and by name with their dependencies, and NotFound for an unknown symbol", async () => {
    const client = createClient(ServerReflection, createGrpcTransport({ baseUrl: server.url }));
    const requests = [
      { messageRequest: { case: "fileContainingSymbol" as const, value: "face.v1.RecognizeRequest" } },
      { messageRequest: { case: "fileContainingSymbol" as const, value: "face.v1.FaceService.Recognize" } },
      { messageRequest: { case: "fileByFilename" as const, value: "grpc/health/v1/health.proto" } },
      { messageRequest: { case: "fileContainingSymbol" as const, value: "face.v1.NoSuchThing" } },
    ];
    const answers: ServerReflectionResponse[] = [];
    for await (const answer of client.serverReflectionInfo((async function* () { yield* requests; })())) answers.push(answer);
    const names = (i: number) => {
      const r = answers[i].messageResponse;
      assert.equal(r.case, "fileDescriptorResponse");
      return r.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
    };
    assert.equal(names(0)[0], "face/v1/face.proto");
    assert.ok(names(0).includes("google/api/annotations.proto"), "its imports come along");
    assert.equal(names(1)[0], "face/v1/face.proto");
    assert.equal(names(2)[0], "grpc/health/v1/health.proto");
    assert.equal(answers[3].messageResponse.case, "errorResponse");
    assert.equal(answers[3].messageResponse.value.errorCode, 5);
  });
});
