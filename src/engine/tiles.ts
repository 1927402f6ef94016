import type { BoxPx } from "./geometry.js";

// A big photo is read in tiles as well as whole, so its small faces are not shrunk away.

/** Each tile covers this many original pixels, i.e. it is shrunk by 2 into a 640x480 input. */
const TILE_WIDTH = 1280;
const TILE_HEIGHT = 960;
/** Tiles overlap by this fraction so a face on a tile edge is whole in a neighbouring tile. */
const TILE_OVERLAP = 0.25;
/** At most this many tiles per image: beyond it tiles grow (each is shrunk more) rather than their number. */
const MAX_TILES = 24;
/** How much tiles grow at each step until they are few enough. */
const TILE_GROWTH = 1.25;
/** Faces larger than this fraction of a tile are left to the whole-frame pass. */
const TILE_MAX_FACE = 0.4;

/** Overlapping tiles of TILE_WIDTH x TILE_HEIGHT (or larger, to stay within MAX_TILES) covering the frame. */
export function tiles(width: number, height: number): BoxPx[] {
  const starts = (size: number, tile: number): number[] => {
    if (size <= tile) return [0];
    const stride = tile * (1 - TILE_OVERLAP);
    const count = Math.ceil((size - tile) / stride) + 1;
    const step = (size - tile) / (count - 1);
    return Array.from({ length: count }, (_, i) => Math.round(i * step));
  };
  let tileWidth = TILE_WIDTH;
  let tileHeight = TILE_HEIGHT;
  while (starts(width, tileWidth).length * starts(height, tileHeight).length > MAX_TILES) {
    tileWidth = Math.round(tileWidth * TILE_GROWTH);
    tileHeight = Math.round(tileHeight * TILE_GROWTH);
  }
  const result: BoxPx[] = [];
  for (const y of starts(height, tileHeight)) {
    for (const x of starts(width, tileWidth)) {
      result.push({ x, y, width: Math.min(tileWidth, width), height: Math.min(tileHeight, height) });
    }
  }
  return result;
}

/**
 * Tiles are there for small faces only: a large face is the whole-frame pass's job, and a face that
 * touches a tile edge inside the image may be cut in half by it.
 */
export function isSmallAndWhole(box: BoxPx, tile: BoxPx, width: number, height: number): boolean {
  if (Math.max(box.width, box.height) > Math.min(tile.width, tile.height) * TILE_MAX_FACE) return false;
  const margin = 2;
  const cutLeft = tile.x > 0 && box.x < tile.x + margin;
  const cutTop = tile.y > 0 && box.y < tile.y + margin;
  const cutRight = tile.x + tile.width < width && box.x + box.width > tile.x + tile.width - margin;
  const cutBottom = tile.y + tile.height < height && box.y + box.height > tile.y + tile.height - margin;
  return !(cutLeft || cutTop || cutRight || cutBottom);
}
