import sharp from "sharp";
import { face } from "../../test/support/testdata.js";

/** The test portrait fitted into 640x480, as a camera would send it. */
export async function singleFace640x480(): Promise<Uint8Array> {
  return new Uint8Array(await sharp(face("face_recognition/obama.jpg")).resize(640, 480, { fit: "cover", position: "top" }).jpeg({ quality: 90 }).toBuffer());
}
