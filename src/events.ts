// What the service tells subscribers about: the event types a webhook can subscribe to and the
// shape of one event. The use cases decide every event; those of a change to a user are written by
// the identity store inside the change's own transaction (src/service/identity-events.ts), the
// others (face.*) once the answer is known. The webhook store keeps them in its outbox.

/** Event types a webhook can subscribe to. */
export const EVENT_TYPES = ["user.registered", "face.recognized", "profile.upgraded", "user.deleted", "face.unknown"] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Something that happened, to be delivered to every matching subscription. */
export interface FaceEvent {
  type: EventType;
  collection: string;
  /** "" when the event is about no registered user (face.unknown). */
  identifier: string;
  /** Event-specific fields (distance, box, ...). */
  data: Record<string, unknown>;
}
