/**
 * A valid progressive JPEG of one grey `side` x `side` picture in as many scans as the format allows
 * one component (694): the DC in one scan, then each of the 63 AC coefficients alone, first its
 * upper bits (point transform 10) and then one bit at a time. The picture is flat, so every AC scan
 * is a few end-of-band runs of up to 32,767 blocks: a few bytes each, where the decoder still walks
 * every block of the picture once per scan (libjpeg-turbo's "LJT-01-003").
 */
export function manyScansJpeg(side: number): Uint8Array {
  const blocks = Math.ceil(side / 8) ** 2;
  const out: number[] = [0xff, 0xd8];
  const segment = (marker: number, payload: number[]) => out.push(0xff, marker, (payload.length + 2) >> 8, (payload.length + 2) & 0xff, ...payload);
  segment(0xdb, [0x00, ...new Array(64).fill(1)]); // quantisation table 0, all ones
  segment(0xc2, [8, side >> 8, side & 0xff, side >> 8, side & 0xff, 1, 1, 0x11, 0]); // SOF2: one component, 1x1
  // DC table 0: the one symbol 0 (no difference), code "0". AC table 0: EOBr symbols (r << 4) for r = 0..14, codes of 4 bits.
  segment(0xc4, [0x00, 1, ...new Array(15).fill(0), 0]);
  segment(0xc4, [0x10, 0, 0, 0, 15, ...new Array(12).fill(0), ...Array.from({ length: 15 }, (_, r) => r << 4)]);
  const scan = (ss: number, se: number, ah: number, al: number, data: number[]) => {
    segment(0xda, [1, 1, 0x00, ss, se, (ah << 4) | al]);
    out.push(...data);
  };
  scan(0, 0, 0, 0, entropyCoded((bits) => {
    for (let b = 0; b < blocks; b++) bits(0, 1);
  }));
  // End-of-band runs over every block: symbol r << 4 (code r, 4 bits) then r bits of run - 2^r.
  const allEnded = entropyCoded((bits) => {
    for (let left = blocks; left > 0; ) {
      const run = Math.min(left, 32_767);
      const r = Math.floor(Math.log2(run));
      bits(r, 4);
      bits(run - 2 ** r, r);
      left -= run;
    }
  });
  for (let k = 1; k < 64; k++) {
    scan(k, k, 0, 10, allEnded);
    for (let al = 9; al >= 0; al--) scan(k, k, al + 1, al, allEnded);
  }
  out.push(0xff, 0xd9);
  return Uint8Array.from(out);
}

/** Bits written most significant first, padded with ones, with a 0 stuffed after each 0xFF byte. */
function entropyCoded(write: (bits: (value: number, count: number) => void) => void): number[] {
  const bytes: number[] = [];
  let current = 0;
  let filled = 0;
  const bits = (value: number, count: number) => {
    for (let i = count - 1; i >= 0; i--) {
      current = (current << 1) | ((value >> i) & 1);
      if (++filled === 8) {
        bytes.push(current);
        if (current === 0xff) bytes.push(0);
        current = 0;
        filled = 0;
      }
    }
  };
  write(bits);
  if (filled > 0) bits(0xff, 8 - filled);
  return bytes;
}
