import type { FaceEvent } from "../events.js";
import type { StoredFace } from "../store/identities.js";

// The events of changes to a user. The use cases decide them; the identity store writes them to the
// outbox inside the change's own transaction (an event exists exactly when its change does), which
// is why they are passed in as functions of the change's outcome. Their image_sha256 names the photo
// the face was read from, kept or not (FACE_STORE_IMAGES), as Register's answer and ExportUser do.

/** user.registered, when adding the face created the user. */
export function registrationEvents(collection: string, identifier: string, face: StoredFace) {
  return ({ created }: { created: boolean }): FaceEvent[] =>
    created ? [{ type: "user.registered", collection, identifier, data: { image_sha256: face.photoSha256, box: face.box } }] : [];
}

/** profile.upgraded: auto-healing made the face the user's primary reference. */
export function upgradeEvents(collection: string, identifier: string, face: StoredFace): FaceEvent[] {
  return [{ type: "profile.upgraded", collection, identifier, data: { image_sha256: face.photoSha256, sharpness: face.sharpness, face_width: face.box.width } }];
}

/** user.deleted, with how many faces went. */
export function deletionEvents(collection: string, identifier: string) {
  return ({ faces }: { faces: number }): FaceEvent[] => [{ type: "user.deleted", collection, identifier, data: { faces_deleted: faces } }];
}
