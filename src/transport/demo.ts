import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";

const DEMO_PAGE = fileURLToPath(new URL("../../public/demo.html", import.meta.url));

/**
 * GET /demo: one self-contained page (no build step) to register people from a photo or a webcam
 * snapshot, list and delete them, and watch the camera recognized live over /ws/realtime.
 */
export function registerDemoRoute(app: FastifyInstance): void {
  let page: Promise<Buffer> | undefined;
  app.get("/demo", async (_request, reply) => {
    page ??= readFile(DEMO_PAGE);
    return reply
      .type("text/html; charset=utf-8")
      .header("content-security-policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; connect-src 'self'")
      .send(await page);
  });
}
