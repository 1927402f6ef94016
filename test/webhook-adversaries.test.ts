import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createWebhookDispatcher } from "../src/service/webhook-dispatcher.js";
import { createWebhookStore, MAX_WEBHOOKS_PER_COLLECTION } from "../src/store/webhooks.js";
import { face } from "./support/testdata.js";
import { createReceiver } from "./support/webhook-receiver.js";
import { until } from "./support/until.js";
import { createTrickler, SLOW_HTTP_ANSWER } from "./support/trickler.js";
import { faceClient, openTestDatabase, startTestServer, type TestServer } from "./support/server.js";

const codeOf = (e: unknown) => ConnectError.from(e).code;

describe("webhooks against slow receivers, other collections and time", () => {
  let secret = "";
  const receiver = createReceiver(() => secret);
  const trickler = createTrickler(SLOW_HTTP_ANSWER, 200);
  let server: TestServer;
  let fastUrl = "";
  let slowUrl = "";

  before(async () => {
    const fastPort = await receiver.listen();
    const slowPort = await trickler.listen();
    fastUrl = `http://127.0.0.1:${fastPort}/hook`;
    slowUrl = `http://127.0.0.1:${slowPort}/hook`;
    server = await startTestServer({
      FACE_WEBHOOK_ALLOWED_HOSTS: `127.0.0.1:${fastPort},127.0.0.1:${slowPort}`,
      FACE_WEBHOOK_TIMEOUT_MS: "1000",
      FACE_WEBHOOK_RETRY_BASE_MS: "60000",
      FACE_WEBHOOK_POLL_MS: "100",
    });
  });
  after(async () => {
    await server.close();
    await receiver.close();
    await trickler.close();
  });

  it("accepts public receivers and refuses blocked ones, whatever their address family", async () => {
    const client = faceClient(server);
    const created = await client.createWebhook({ url: "http://8.8.8.8/hook", collection: "public" });
    assert.equal(created.webhook?.url, "http://8.8.8.8/hook");
    for (const url of ["http://[::ffff:7f00:1]/", "http://[::7f00:1]/", "http://[64:ff9b::a9fe:a9fe]/", "http://[2002:a00:1::]/", "http://[fec0::1]/"]) {
      await assert.rejects(client.createWebhook({ url, collection: "public" }), (e) => codeOf(e) === Code.InvalidArgument, url);
    }
  });

  it("deletes a webhook of the caller's collection, and answers NotFound for another collection's", async () => {
    const client = faceClient(server);
    const { webhook } = await client.createWebhook({ url: "http://8.8.4.4/hook", collection: "owner" });
    await assert.rejects(client.deleteWebhook({ id: webhook!.id, collection: "intruder" }), (e) => codeOf(e) === Code.NotFound);
    await assert.rejects(client.deleteWebhook({ id: webhook!.id }), (e) => codeOf(e) === Code.NotFound, "the default collection is another one");
    assert.equal((await client.listWebhooks({ collection: "owner" })).webhooks.length, 1, "still there");
    assert.equal((await client.deleteWebhook({ id: webhook!.id, collection: "owner" })).id, webhook!.id);
    assert.equal((await client.listWebhooks({ collection: "owner" })).webhooks.length, 0);
    await assert.rejects(client.deleteWebhook({ id: webhook!.id, collection: "owner" }), (e) => codeOf(e) === Code.NotFound, "deleted once");
  });

  it(`holds at most ${MAX_WEBHOOKS_PER_COLLECTION} webhooks per collection, also when more are created at once, and refuses an over-long secret`, async () => {
    // Each event is written and posted once per subscribed webhook: without a bound, one key made
    // every recognition post thousands of times (to any public address it names).
    const client = faceClient(server);
    const attempts = await Promise.allSettled(Array.from({ length: MAX_WEBHOOKS_PER_COLLECTION + 20 }, (_, i) => client.createWebhook({ url: `http://8.8.8.8/hook/${i}`, collection: "crowded" })));
    const refused = attempts.filter((a) => a.status === "rejected").map((a) => (a as PromiseRejectedResult).reason);
    assert.equal(attempts.length - refused.length, MAX_WEBHOOKS_PER_COLLECTION);
    assert.ok(refused.every((e) => codeOf(e) === Code.FailedPrecondition), ConnectError.from(refused[0]).message);
    assert.match(ConnectError.from(refused[0]).message, /collection crowded holds 100 webhooks, the most it may; delete one first/);
    const { webhooks } = await client.listWebhooks({ collection: "crowded" });
    assert.equal(webhooks.length, MAX_WEBHOOKS_PER_COLLECTION);
    assert.ok((await client.createWebhook({ url: "http://8.8.8.8/hook", collection: "uncrowded" })).webhook, "another collection has its own room");
    await client.deleteWebhook({ id: webhooks[0].id, collection: "crowded" });
    assert.ok((await client.createWebhook({ url: "http://8.8.8.8/hook/again", collection: "crowded" })).webhook, "room again after a delete");
    await assert.rejects(client.createWebhook({ url: "http://8.8.8.8/hook", collection: "secrets", secret: "s".repeat(257) }), (e) => {
      assert.equal(codeOf(e), Code.InvalidArgument);
      assert.match(ConnectError.from(e).message, /secret must be 16 to 256 characters/);
      return true;
    });
    assert.ok((await client.createWebhook({ url: "http://8.8.8.8/hook", collection: "secrets", secret: "s".repeat(256) })).webhook);
  });

  it("refuses a secret with a NUL character, which PostgreSQL text cannot hold, as InvalidArgument", async () => {
    // It answered Internal: the insert failed in the database.
    await assert.rejects(faceClient(server).createWebhook({ url: "http://8.8.8.8/hook", collection: "secrets", secret: "sixteen-chars\0-and-more" }), (e) => {
      assert.equal(codeOf(e), Code.InvalidArgument);
      assert.match(ConnectError.from(e).message, /secret must not hold NUL/);
      return true;
    });
  });

  it("ends a trickling receiver's post at the total deadline, and delivers to other receivers meanwhile", async () => {
    const client = faceClient(server);
    await client.createWebhook({ url: slowUrl, collection: "slow", events: ["user.registered"] });
    secret = (await client.createWebhook({ url: fastUrl, collection: "fast", events: ["user.registered"] })).secret;
    const store = createWebhookStore(server.database.knex);
    // More slow deliveries than the dispatcher posts at once.
    for (let i = 0; i < 20; i++) await store.enqueue({ type: "user.registered", collection: "slow", identifier: `slow-${i}`, data: {} });
    await until(() => trickler.connections > 0, "the slow posts started");
    const start = Date.now();
    assert.equal(await store.enqueue({ type: "user.registered", collection: "fast", identifier: "fast-1", data: {} }), 1);
    await until(() => receiver.received.some((r) => r.event.identifier === "fast-1"), "the fast receiver's event", 10_000);
    assert.ok(Date.now() - start < 900, `the fast receiver waited ${Date.now() - start} ms behind the slow one`);
    await until(() => trickler.openMs.length >= 4, "slow posts ended");
    assert.ok(trickler.openMs.every((ms) => ms < 2_500), `posts stayed open ${trickler.openMs.join(", ")} ms with a 1000 ms deadline`);
    await until(async () => ((await store.countByStatus("slow")).pending ?? 0) === 20 && (await server.database.knex("webhook_deliveries").where({ collection: "slow" }).whereNotNull("last_error")).length >= 4, "failures recorded");
    const [row] = await server.database.knex("webhook_deliveries").where({ collection: "slow" }).whereNotNull("last_error").limit(1);
    assert.match(row.last_error, /within 1000 ms/);
  });

  it("purges delivered and given-up deliveries after the retention, and DeleteUser deletes every payload about the person", async () => {
    const client = faceClient(server);
    secret = (await client.createWebhook({ url: fastUrl, collection: "retained" })).secret;
    await client.register({ identifier: "obama", image: face("face_recognition/obama.jpg"), collection: "retained" });
    await until(() => receiver.received.some((r) => r.event.collection === "retained" && r.event.type === "user.registered"), "user.registered delivered");
    const knex = server.database.knex;
    await until(async () => (await knex("webhook_deliveries").where({ collection: "retained", status: "delivered" })).length === 1, "recorded as delivered");
    await client.deleteUser({ identifier: "obama", collection: "retained" });
    const left = await knex("webhook_deliveries").where({ collection: "retained", identifier: "obama" }).select("event_type");
    assert.deepEqual(left.map((r) => r.event_type), ["user.deleted"], "only the deletion's own event remains");

    const store = createWebhookStore(knex);
    await store.enqueue({ type: "user.registered", collection: "retained", identifier: "old", data: {} });
    await knex("webhook_deliveries").where({ collection: "retained", identifier: "old" }).update({ status: "delivered", created_at: knex.raw("now() - interval '8 days'") });
    await store.enqueue({ type: "user.registered", collection: "retained", identifier: "old-failed", data: {} });
    await knex("webhook_deliveries").where({ collection: "retained", identifier: "old-failed" }).update({ status: "failed", created_at: knex.raw("now() - interval '8 days'") });
    await store.enqueue({ type: "user.registered", collection: "retained", identifier: "old-pending", data: {} });
    await knex("webhook_deliveries").where({ collection: "retained", identifier: "old-pending" }).update({ created_at: knex.raw("now() - interval '8 days'"), next_attempt_at: knex.raw("now() + interval '1 day'") });
    assert.equal(await store.purgeFinished(7), 2);
    const identifiers = (await knex("webhook_deliveries").where({ collection: "retained" }).select("identifier")).map((r) => r.identifier);
    assert.ok(identifiers.includes("old-pending") && !identifiers.includes("old") && !identifiers.includes("old-failed"));
  });
});

describe("webhook leases", () => {
  it("records an outcome only while its lease is held, so a lapsed lease cannot deliver twice", async () => {
    const database = await openTestDatabase();
    try {
      const store = createWebhookStore(database.knex);
      await store.create({ collection: "default", url: "http://8.8.8.8/lease", identifier: "", events: ["face.unknown"], secret: "s".repeat(32) });
      assert.equal(await store.enqueue({ type: "face.unknown", collection: "default", identifier: "", data: {} }), 1);
      const [first] = await store.claimDue(10, 1, 10); // a lease of 1 ms: lapses at once
      assert.ok(first);
      await new Promise((r) => setTimeout(r, 20));
      const [second] = await store.claimDue(10, 60_000, 10);
      assert.equal(second?.id, first.id, "a lapsed lease is claimed again");
      assert.notEqual(second.leaseId, first.leaseId);
      assert.deepEqual(await store.claimDue(10, 60_000, 10), [], "a held lease is not");
      assert.equal(await store.markDelivered(first), false, "the first lease is gone");
      assert.equal(await store.markFailed(first, "late", undefined), false);
      assert.equal(await store.markDelivered(second), true);
      assert.equal((await database.knex("webhook_deliveries").where({ id: first.id }).first()).status, "delivered");
    } finally {
      await database.dispose();
    }
  });

  it("leases at most the per-webhook share to one webhook, counting leases already held", async () => {
    const database = await openTestDatabase();
    try {
      const store = createWebhookStore(database.knex);
      await store.create({ collection: "default", url: "http://8.8.8.8/a", identifier: "", events: ["face.unknown"], secret: "s".repeat(32) });
      for (let i = 0; i < 6; i++) await store.enqueue({ type: "face.unknown", collection: "default", identifier: "", data: { i } });
      assert.equal((await store.claimDue(10, 60_000, 4)).length, 4);
      assert.equal((await store.claimDue(10, 60_000, 4)).length, 0, "4 are in flight already");
    } finally {
      await database.dispose();
    }
  });

  it("warns of a lost lease, not of a delivery deleted with its webhook while it was posted", async () => {
    const database = await openTestDatabase();
    const warnings: string[] = [];
    const store = createWebhookStore(database.knex);
    // The receiver takes the post, and the webhook is deleted before it answers: the delivery's row
    // goes with it, so its outcome has nowhere to be recorded, and that is no lost lease.
    const receiver = createServer((req, res) => {
      req.resume().on("end", async () => {
        await store.delete("default", webhook.id);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
    const webhook = (await store.create({ collection: "default", url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, identifier: "", events: ["face.unknown"], secret: "s".repeat(32) }))!;
    const dispatcher = createWebhookDispatcher(store, { maxAttempts: 3, retryBaseMs: 1000, timeoutMs: 5000, pollMs: 50, allowedHosts: ["127.0.0.1"] }, { warn: (_, message) => warnings.push(message) });
    try {
      dispatcher.start();
      await store.enqueue({ type: "face.unknown", collection: "default", identifier: "", data: {} });
      await until(async () => (await database.knex("webhooks").count({ n: "*" }))[0].n == 0, "the webhook to be deleted");
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(warnings, []);
    } finally {
      await dispatcher.stop();
      receiver.close();
      await database.dispose();
    }
  });
});
