import { writeFile } from "node:fs/promises";
import sharp from "sharp";

/**
 * Writes frames (encoded images, all the same size) as a YUV4MPEG2 file, the format Chromium's fake
 * camera plays (--use-file-for-fake-video-capture). 4:2:0, full-range BT.601 (JPEG) colours.
 */
export async function writeY4m(path: string, frames: Uint8Array[], framesPerSecond: number): Promise<void> {
  const decoded = await Promise.all(frames.map((f) => sharp(f).removeAlpha().raw().toBuffer({ resolveWithObject: true })));
  const { width, height } = decoded[0].info;
  if (width % 2 || height % 2) throw new Error("frame sides must be even for 4:2:0");
  const chunks: Buffer[] = [Buffer.from(`YUV4MPEG2 W${width} H${height} F${framesPerSecond}:1 Ip A1:1 C420jpeg\n`)];
  for (const { data, info } of decoded) {
    if (info.width !== width || info.height !== height) throw new Error("every frame must have the same size");
    const y = Buffer.alloc(width * height);
    const u = Buffer.alloc((width / 2) * (height / 2));
    const v = Buffer.alloc((width / 2) * (height / 2));
    for (let i = 0; i < width * height; i++) {
      y[i] = 0.299 * data[i * 3] + 0.587 * data[i * 3 + 1] + 0.114 * data[i * 3 + 2];
    }
    for (let row = 0; row < height / 2; row++) {
      for (let col = 0; col < width / 2; col++) {
        let r = 0, g = 0, b = 0;
        for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
          const p = ((row * 2 + dy) * width + col * 2 + dx) * 3;
          r += data[p] / 4; g += data[p + 1] / 4; b += data[p + 2] / 4;
        }
        u[row * (width / 2) + col] = Math.min(255, Math.max(0, 128 - 0.168736 * r - 0.331264 * g + 0.5 * b));
        v[row * (width / 2) + col] = Math.min(255, Math.max(0, 128 + 0.5 * r - 0.418688 * g - 0.081312 * b));
      }
    }
    chunks.push(Buffer.from("FRAME\n"), y, u, v);
  }
  await writeFile(path, Buffer.concat(chunks));
}
