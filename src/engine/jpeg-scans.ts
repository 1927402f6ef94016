/**
 * The most scans a JPEG may have: as many as libjpeg's own tools write in one scan script
 * (jpegtran's and cjpeg's `-scans` take 100). Encoders write 1 (baseline) to about 10 (libjpeg's
 * progressive default). The decoder walks every block of the picture once per scan, and a scan of
 * blocks with nothing to add is a few bytes: a valid 120 KB progressive JPEG of 694 scans at 36
 * megapixels took libvips 7.5 s to decode here, where the same picture in 10 scans took 1.2 s.
 */
export const MAX_JPEG_SCANS = 100;

const SOS = 0xda;
const EOI = 0xd9;

/**
 * How many scans (start-of-scan segments) the JPEG `bytes` has, counting no further than `stopAfter`
 * + 1. Walks the marker segments by their lengths, so a thumbnail or profile inside an APPn segment
 * is not counted; after each scan it skips the entropy-coded data, in which 0xFF is always followed
 * by 0 (stuffing) or a restart marker. A truncated or malformed stream stops the count there: the
 * decoder refuses it anyway.
 */
export function countJpegScans(bytes: Uint8Array, stopAfter = MAX_JPEG_SCANS): number {
  let scans = 0;
  let at = 2; // past SOI
  while (at + 4 <= bytes.length && scans <= stopAfter) {
    if (bytes[at] !== 0xff) return scans;
    const marker = bytes[at + 1];
    if (marker === 0xff) {
      at += 1; // fill byte before a marker
      continue;
    }
    if (marker === EOI) return scans;
    const end = at + 2 + ((bytes[at + 2] << 8) | bytes[at + 3]);
    if (marker !== SOS) {
      at = end;
      continue;
    }
    scans++;
    at = nextMarker(bytes, end);
  }
  return scans;
}

/** The offset of the first marker at or after `from` that is not stuffing or a restart marker. */
function nextMarker(bytes: Uint8Array, from: number): number {
  for (let at = bytes.indexOf(0xff, from); at !== -1 && at + 1 < bytes.length; at = bytes.indexOf(0xff, at + 1)) {
    const next = bytes[at + 1];
    const restart = next >= 0xd0 && next <= 0xd7;
    if (next !== 0 && !restart && next !== 0xff) return at;
  }
  return bytes.length;
}
