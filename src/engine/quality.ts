import type { BoxPx } from "./geometry.js";
import { toGrey, type RgbImage } from "./image.js";

/** How usable a face is for recognition. */
export interface FaceQuality {
  /** Variance of the Laplacian of the aligned grey face: low means blurred or upscaled from few pixels. */
  sharpness: number;
  /** Size of the face box in original pixels. */
  faceWidth: number;
  faceHeight: number;
  /** Mean grey level of the aligned face, 0..255. */
  brightness: number;
}

/** Measures focus and exposure on the aligned face (the pixels the embedding actually sees). */
export function measureQuality(aligned: RgbImage, box: BoxPx): FaceQuality {
  const grey = toGrey(aligned);
  const { width, height } = aligned;
  let sum = 0, sumSq = 0, n = 0, brightness = 0;
  for (let i = 0; i < grey.length; i++) brightness += grey[i];
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      const i = y * width + x;
      const lap = grey[i - 1] + grey[i + 1] + grey[i - width] + grey[i + width] - 4 * grey[i];
      sum += lap;
      sumSq += lap * lap;
      n++;
    }
  }
  const mean = sum / n;
  return {
    sharpness: sumSq / n - mean * mean,
    faceWidth: Math.round(box.width),
    faceHeight: Math.round(box.height),
    brightness: brightness / grey.length,
  };
}
