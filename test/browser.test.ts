import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { chromium, type Browser } from "playwright-core";
import { face, FACES_DIR } from "./support/testdata.js";
import { startTestServer, type TestServer } from "./support/server.js";
import { writeY4m } from "./support/y4m.js";
import { describeUnless } from "./support/suite.js";

/** Debian's chromium (apt-get install chromium; .ci/run installs it), or CHROMIUM_PATH. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = join(import.meta.dirname, "..", "test-artifacts");
// CI sets FACE_REQUIRE_BROWSER so a missing browser fails there instead of skipping.
const skip = existsSync(CHROMIUM) ? false : process.env.FACE_REQUIRE_BROWSER ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;

describeUnless(skip, "the demo page in headless Chromium with a fake camera playing the clip", () => {
  let server: TestServer;
  let browser: Browser;
  let workDir: string;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "face-browser-"));
    const frames = readdirSync(join(FACES_DIR, "video/frames")).sort().map((f) => face(`video/frames/${f}`));
    const clip = join(workDir, "clip.y4m");
    await writeY4m(clip, frames, 2);
    server = await startTestServer();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", `--use-file-for-fake-video-capture=${clip}`],
    });
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    await rm(workDir, { recursive: true, force: true });
  });

  it("registers a person through the page, then names them on the live camera view", async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 1400 } });
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(e.message));
    await page.goto(`${server.url}/demo`);
    await page.getByLabel("Name").fill("lin-manuel-miranda");
    await page.getByLabel("Photo").setInputFiles(join(FACES_DIR, "video/lin-manuel-miranda.png"));
    await page.getByRole("button", { name: "Register" }).click();
    await page.getByRole("status").filter({ hasText: "Registered lin-manuel-miranda." }).waitFor({ timeout: 30_000 });
    await page.locator("#users li", { hasText: "lin-manuel-miranda" }).waitFor();

    await page.getByRole("button", { name: "Start camera" }).click();
    await page.locator("#seen", { hasText: "lin-manuel-miranda" }).waitFor({ timeout: 60_000 });
    assert.ok(await page.locator("#flame .bar", { hasText: "detect" }).count() > 0, "the flame graph shows the stages");
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "demo-live.png"), fullPage: true });
    assert.deepEqual(problems, [], "no script errors on the page");

    await page.getByRole("button", { name: "Delete lin-manuel-miranda" }).click();
    await page.locator("#users li", { hasText: "lin-manuel-miranda" }).waitFor({ state: "detached" });
  });
});
