import sharp from "sharp";

/**
 * A crowd photo: the face `box` of `photo` (with some margin) tiled `side` x `side` times at 120 px
 * each, one JPEG. Every tile is a face the detector finds.
 */
export async function crowdPhoto(photo: Uint8Array, box: { x: number; y: number; width: number; height: number }, side: number): Promise<Uint8Array> {
  const left = Math.max(0, Math.round(box.x - box.width * 0.3));
  const top = Math.max(0, Math.round(box.y - box.height * 0.3));
  const crop = await sharp(photo).extract({ left, top, width: Math.round(box.width * 1.6), height: Math.round(box.height * 1.6) }).resize(120, 120).toBuffer();
  const tiles = Array.from({ length: side * side }, (_, i) => ({ input: crop, left: (i % side) * 120, top: Math.floor(i / side) * 120 }));
  return new Uint8Array(await sharp({ create: { width: side * 120, height: side * 120, channels: 3, background: "#888" } }).composite(tiles).jpeg({ quality: 85 }).toBuffer());
}
