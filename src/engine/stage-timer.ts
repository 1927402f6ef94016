/** Times one stage of a request (a span per call); the engine does not know who is listening. */
export type StageTimer = <T>(label: string, work: () => Promise<T>) => Promise<T>;

/** A timer that times nothing, for engines nobody watches (tools, tests). */
export const untimed: StageTimer = (_label, work) => work();
