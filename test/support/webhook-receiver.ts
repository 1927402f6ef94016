import { createHmac } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  event: { id: string; type: string; identifier: string; time: string; collection: string; image_sha256?: string | null };
  signatureValid: boolean;
}

/** A webhook receiver on loopback that checks each signature; it can be switched off and on. */
export function createReceiver(secret: () => string) {
  const received: Received[] = [];
  let up = true;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      if (!up) {
        res.writeHead(503).end();
        return;
      }
      const body = Buffer.concat(chunks).toString("utf8");
      const [t, v1] = String(req.headers["x-face-signature"]).split(",").map((p) => p.split("=")[1]);
      const expected = createHmac("sha256", secret()).update(`${t}.${body}`).digest("hex");
      const fresh = Math.abs(Date.now() / 1000 - Number(t)) < 300;
      received.push({ event: JSON.parse(body), signatureValid: v1 === expected && fresh });
      res.writeHead(204).end();
    });
  });
  return {
    received,
    setUp: (value: boolean) => { up = value; },
    async listen() {
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
      return (server.address() as AddressInfo).port;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
