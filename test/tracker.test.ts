import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createFaceTracker, type FaceTracker } from "../src/service/tracker.js";

const box = (x: number, width = 100) => ({ x, y: 0, width, height: width });

/** A tracker whose previous frame held one face at `previous`, searched and named `identifier` ("" unknown). */
function trackerAfter(previous: ReturnType<typeof box>, identifier: string, clock?: () => number) {
  const tracker = createFaceTracker(clock);
  const [first] = tracker.assign("c", [previous]);
  tracker.commit("c", [{ ...first.track, identifier, distance: identifier ? 0.3 : 0.9, framesSinceSearch: 0 }]);
  return { tracker, first: first.track };
}

/** The frames (1 to `count`) in which the tracker's one steady face is searched; `beforeEach` runs before each frame. */
function framesSearched(tracker: FaceTracker, count: number, beforeEach: () => void = () => {}): number[] {
  const searched: number[] = [];
  for (let frame = 1; frame <= count; frame++) {
    beforeEach();
    const [next] = tracker.assign("c", [box(0)]);
    if (next.needsSearch) searched.push(frame);
    tracker.commit("c", [{ ...next.track, framesSinceSearch: next.needsSearch ? 0 : next.track.framesSinceSearch }]);
  }
  return searched;
}

describe("face tracker", () => {
  it("keeps a steady face's identity without a search until its recheck is due", () => {
    const { tracker, first } = trackerAfter(box(0), "lin");
    // Moved 5 px: the same face, IoU 0.9.
    const [next] = tracker.assign("c", [box(5)]);
    assert.equal(next.track.id, first.id);
    assert.equal(next.track.identifier, "lin");
    assert.equal(next.needsSearch, false);
  });

  it("searches a steady face again every 15 frames when named, every 10 when unknown", () => {
    for (const [identifier, every] of [["lin", 15], ["", 10]] as const) {
      assert.deepEqual(framesSearched(trackerAfter(box(0), identifier).tracker, 2 * every), [every, 2 * every], identifier || "unknown");
    }
  });

  it("searches a steady face again after half a second when named, a third when unknown, at few frames a second", () => {
    for (const [identifier, searchedFrames] of [["lin", [3, 6]], ["", [2, 4, 6]]] as const) {
      // Five frames a second: the frame counts alone would keep the name unconfirmed for 3 s.
      let now = 0;
      const { tracker } = trackerAfter(box(0), identifier, () => now);
      assert.deepEqual(framesSearched(tracker, 6, () => (now += 200)), searchedFrames, identifier || "unknown");
    }
  });

  it("counts the recheck time from the search's answer, not from the frame's arrival: slow searches do not make every frame due", () => {
    // A loaded server: the frame that searched the face took 400 ms, more than an unknown face's
    // third of a second, and the next frame is tracked 10 ms after its answer.
    let now = 0;
    const tracker = createFaceTracker(() => now);
    const [first] = tracker.assign("c", [box(0)]);
    now = 400;
    tracker.commit("c", [{ ...first.track, framesSinceSearch: 0 }]);
    now = 410;
    assert.equal(tracker.assign("c", [box(0)])[0].needsSearch, false, "searched 10 ms ago");
    now = 400 + 333;
    assert.equal(tracker.assign("c", [box(0)])[0].needsSearch, true, "searched a third of a second ago");
  });

  it("searches a face again when its box jumped, though it overlaps enough to keep the track", () => {
    // A cut to someone else standing where the known face was, or an unknown face turning to the
    // camera: the track goes on (IoU 0.5), its identity is checked now, not frames later.
    const { tracker, first } = trackerAfter(box(0), "lin");
    const [jumped] = tracker.assign("c", [box(33)]);
    assert.equal(jumped.track.id, first.id);
    assert.equal(jumped.needsSearch, true);
    // Grown from 80 to 100 px (a face turning to the camera or coming closer): IoU 0.64.
    assert.equal(trackerAfter(box(0, 80), "").tracker.assign("c", [box(0, 100)])[0].needsSearch, true);
  });

  it("starts a new track for a box that overlaps no previous face, or for another collection", () => {
    const { tracker, first } = trackerAfter(box(0), "lin");
    const [apart] = tracker.assign("c", [box(300)]);
    assert.notEqual(apart.track.id, first.id);
    assert.equal(apart.isNew, true);
    const [elsewhere] = tracker.assign("other", [box(0)]);
    assert.equal(elsewhere.isNew, true);
  });
});
