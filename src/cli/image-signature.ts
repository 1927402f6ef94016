import { open } from "node:fs/promises";

/**
 * Whether a file's first bytes are those of an image format the service decodes (JPEG, PNG, GIF,
 * WebP, TIFF, HEIF/AVIF): for files whose name says nothing, as a camera's or a phone's export
 * without an extension (`IMG_0001`). The service still decides whether the rest is a photo.
 */
export async function looksLikeImage(path: string): Promise<boolean> {
  const head = Buffer.alloc(12);
  const file = await open(path, "r");
  try {
    const { bytesRead } = await file.read(head, 0, head.length, 0);
    return IMAGE_SIGNATURES.some((matches) => matches(head.subarray(0, bytesRead)));
  } finally {
    await file.close();
  }
}

const startsWith = (bytes: Buffer, signature: number[], at = 0) =>
  bytes.length >= at + signature.length && signature.every((b, i) => bytes[at + i] === b);
const ascii = (text: string) => [...text].map((c) => c.charCodeAt(0));

const IMAGE_SIGNATURES: ((head: Buffer) => boolean)[] = [
  (h) => startsWith(h, [0xff, 0xd8, 0xff]), // JPEG
  (h) => startsWith(h, [0x89, ...ascii("PNG"), 0x0d, 0x0a, 0x1a, 0x0a]),
  (h) => startsWith(h, ascii("GIF8")),
  (h) => startsWith(h, ascii("RIFF")) && startsWith(h, ascii("WEBP"), 8),
  (h) => startsWith(h, [0x49, 0x49, 0x2a, 0x00]) || startsWith(h, [0x4d, 0x4d, 0x00, 0x2a]), // TIFF, either byte order
  // ISO media (HEIC, AVIF, but also MP4 video): the brand after "ftyp" says which.
  (h) => startsWith(h, ascii("ftyp"), 4) && STILL_IMAGE_BRANDS.has(h.subarray(8, 12).toString("latin1")),
];

const STILL_IMAGE_BRANDS = new Set(["avif", "avis", "heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1"]);
