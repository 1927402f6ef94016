import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fastify from "fastify";
import { ConfigError, loadConfig } from "../src/config.js";

describe("configuration", () => {
  it("has sane defaults", () => {
    const config = loadConfig({});
    assert.equal(config.port, 8080);
    assert.equal(config.host, "0.0.0.0");
    assert.equal(config.databaseUrl, undefined);
    assert.deepEqual(config.corsOrigins, ["*"]);
    assert.ok(Object.isFrozen(config));
  });

  it("lists every invalid variable at once", () => {
    assert.throws(
      () => loadConfig({ PORT: "http", LOG_LEVEL: "loud", DATABASE_URL: "mysql://x", CORS_ORIGINS: "not an origin", FACE_MATCH_THRESHOLD: "-1" }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.equal(e.problems.length, 5);
        for (const name of ["PORT", "LOG_LEVEL", "DATABASE_URL", "CORS_ORIGINS", "FACE_MATCH_THRESHOLD"]) assert.match(e.message, new RegExp(name));
        return true;
      },
    );
  });

  it("keeps the receive budget at least one message of the largest size, or no such message could ever be read", () => {
    const MIB = 1024 * 1024;
    const largest = loadConfig({ FACE_MAX_IMAGE_BYTES: String(MIB) }).maxMessageBytes;
    assert.equal(loadConfig({ FACE_MAX_IMAGE_BYTES: String(MIB), FACE_MAX_RECEIVING_BYTES: String(largest) }).maxReceivingBytes, largest);
    assert.throws(
      () => loadConfig({ FACE_MAX_IMAGE_BYTES: String(MIB), FACE_MAX_RECEIVING_BYTES: String(largest - 1) }),
      new RegExp(`FACE_MAX_RECEIVING_BYTES=.* must be an integer from ${largest} `),
    );
    // The default grows with the image limit rather than refusing the largest message.
    const huge = loadConfig({ FACE_MAX_IMAGE_BYTES: String(100 * MIB) });
    assert.ok(huge.maxReceivingBytes >= huge.maxMessageBytes);
  });

  it("takes trusted proxies as addresses, CIDR blocks of either family and named ranges, and nothing fastify would refuse", () => {
    const accepted = ["127.0.0.1", "10.0.0.0/8", "fd00::/8", "::1", "::ffff:10.0.0.0/104", "loopback", "uniquelocal"];
    const { trustedProxies } = loadConfig({ FACE_TRUSTED_PROXIES: accepted.join(", ") });
    assert.deepEqual(trustedProxies, accepted);
    assert.doesNotThrow(() => fastify({ trustProxy: [...trustedProxies] }));
    for (const refused of ["10.0.0.0/33", "0.0.0.0/0", "::/0", "fd00::/129", "proxy.example.com", "10.0.0.0/8/8", "10.0.0.0/x", "*"]) {
      assert.throws(() => loadConfig({ FACE_TRUSTED_PROXIES: refused }), /FACE_TRUSTED_PROXIES entry/, refused);
    }
    assert.deepEqual(loadConfig({}).trustedProxies, [], "no proxy is trusted unless named");
  });

  it("takes a read replica only beside a primary", () => {
    assert.throws(() => loadConfig({ DATABASE_READ_URL: "postgres://replica/face" }), /DATABASE_READ_URL needs DATABASE_URL/);
    assert.throws(() => loadConfig({ DATABASE_URL: "postgres://primary/face", DATABASE_READ_URL: "replica" }), /DATABASE_READ_URL must start with postgres/);
    assert.equal(loadConfig({ DATABASE_URL: "postgres://primary/face", DATABASE_READ_URL: "postgres://replica/face" }).databaseReadUrl, "postgres://replica/face");
  });
});
