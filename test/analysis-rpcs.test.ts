import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Client } from "@connectrpc/connect";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { face } from "./support/testdata.js";
import { useTestServer, type TestServer } from "./support/server.js";

describe("Detect, ExtractFeatures and Analyze", () => {
  let server: TestServer;
  let client: Client<typeof FaceService>;
  useTestServer((s, c) => {
    server = s;
    client = c;
  });

  it("detects every face largest first, honouring max_faces, over gRPC and REST multipart", async () => {
    const all = await client.detect({ image: face("multi/two_people.jpg") });
    assert.equal(all.faces.length, 2);
    assert.equal(all.imageWidth, 1126);
    assert.ok(all.faces[0].box!.width * all.faces[0].box!.height >= all.faces[1].box!.width * all.faces[1].box!.height);
    assert.equal((await client.detect({ image: face("multi/two_people.jpg"), maxFaces: 1 })).faces.length, 1);
    const form = new FormData();
    form.append("image", new Blob([Buffer.from(face("multi/two_people.jpg"))]), "g.jpg");
    form.append("max_faces", "1");
    const rest = await (await fetch(`${server.url}/api/v1/detect`, { method: "POST", body: form })).json();
    assert.equal(rest.faces.length, 1);
    assert.equal(rest.faces[0].landmarks.length, 5);
  });

  it("extracts a unit 512-d embedding per face with its model version", async () => {
    const result = await client.extractFeatures({ image: face("multi/two_people.jpg") });
    assert.equal(result.faces.length, 2);
    for (const f of result.faces) {
      assert.equal(f.embedding.length, 512);
      assert.ok(Math.abs(Math.hypot(...f.embedding) - 1) < 1e-3);
      assert.match(f.model, /^faceplugin-fr_feature@/);
    }
  });

  it("analyzes liveness, age, gender, expression and pose per face, image_url data: URIs included", async () => {
    const dataUri = `data:image/jpeg;base64,${Buffer.from(face("face_recognition/obama.jpg")).toString("base64")}`;
    const result = await client.analyze({ imageUrl: dataUri });
    assert.equal(result.faces.length, 1);
    const [f] = result.faces;
    assert.equal(f.gender, "male");
    assert.ok(f.age > 20 && f.age < 80);
    assert.ok(f.liveness >= 0 && f.liveness <= 1);
    assert.ok(f.expression !== "");
    assert.ok(f.pose !== undefined);
    assert.ok(result.flameGraph.some((e) => e.label === "analyze"));
  });
});
