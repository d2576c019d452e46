/**
 * What the runner is working on now, for `GET /tasks`, `taskrunner ps` and `inspect`: one row
 * per request from its delivery to its settlement. The runner writes it; the engine knows
 * nothing of it.
 *
 * @module
 */

/**
 * Where a request stands: its task is being set up (cancellation queue, pipes), its process
 * runs, a cancellation is stopping it, or its terminal response is held because no queue takes
 * it yet (the server is away).
 */
export type TaskState = "starting" | "running" | "cancelling" | "held";

/** Why a terminal response is held, as the holds report it. */
export interface HoldInfo {
  /** The terminal status held: `SUCCESS`, `FAILED` or `CANCELLED`. */
  status: string;
  /** The routing key that no queue is bound for. */
  routingKey?: string;
}

/** One row of the table, as `GET /tasks` serves it (times in ISO 8601, durations in seconds). */
export interface TaskSnapshot {
  id: string;
  script: string;
  /** The task process, once spawned. */
  pid: number | null;
  state: TaskState;
  /** When the request was delivered to this runner. */
  received: string;
  /** When its process was spawned; null before. */
  started: string | null;
  /** Seconds since the process was spawned (since the delivery before that). */
  elapsed: number;
  /** Whether the process has exited (its response may still be on its way). */
  exited: boolean;
  /** Progress messages forwarded so far. */
  progressMessages: number;
  /** When the last progress message came; null before the first. */
  lastProgress: string | null;
  /** Size of the last progress message, in bytes. */
  lastProgressBytes: number | null;
  cancelRequested: boolean;
  /** Deliveries of this request being answered by this run (more than 1 after a redelivery). */
  deliveries: number;
  /** Runs of the request lost with their runner before this one. */
  lostRuns: number;
  /** The held response, when `state` is `held`. */
  held: (HoldInfo & { since: string }) | null;
}

interface Row {
  id: string;
  script: string;
  pid: number | undefined;
  state: Exclude<TaskState, "held">;
  received: number;
  started: number | undefined;
  exited: boolean;
  progressMessages: number;
  lastProgress: number | undefined;
  lastProgressBytes: number | undefined;
  cancelRequested: boolean;
  deliveries: number;
  lostRuns: number;
  held: (HoldInfo & { since: number }) | undefined;
}

/**
 * The runner's table of requests in progress. Every method takes the request id and ignores
 * an id it does not hold (a late event of a request already settled).
 */
export class TaskTable {
  readonly #rows = new Map<string, Row>();
  readonly #now: () => number;

  /** @param options `now` reads the wall clock in ms (tests pass their own) */
  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** A request was delivered and is being set up. */
  add(id: string, info: { script: string; lostRuns?: number }): void {
    this.#rows.set(id, {
      id,
      script: info.script,
      pid: undefined,
      state: "starting",
      received: this.#now(),
      started: undefined,
      exited: false,
      progressMessages: 0,
      lastProgress: undefined,
      lastProgressBytes: undefined,
      cancelRequested: false,
      deliveries: 1,
      lostRuns: info.lostRuns ?? 0,
      held: undefined,
    });
  }

  /** The broker delivered the request again while it runs here. */
  redelivered(id: string): void {
    const row = this.#rows.get(id);
    if (row) row.deliveries++;
  }

  /** Its process was spawned. */
  started(id: string, pid: number): void {
    const row = this.#rows.get(id);
    if (!row) return;
    row.pid = pid;
    row.started = this.#now();
    if (row.state === "starting") row.state = row.cancelRequested ? "cancelling" : "running";
  }

  /** A progress message of `bytes` was forwarded. */
  progress(id: string, bytes: number): void {
    const row = this.#rows.get(id);
    if (!row) return;
    row.progressMessages++;
    row.lastProgress = this.#now();
    row.lastProgressBytes = bytes;
  }

  /** A cancellation arrived for it. */
  cancelRequested(id: string): void {
    const row = this.#rows.get(id);
    if (!row) return;
    row.cancelRequested = true;
    if (row.state === "running") row.state = "cancelling";
  }

  /** Its process exited (or never started); its terminal response is on its way. */
  exited(id: string): void {
    const row = this.#rows.get(id);
    if (row) row.exited = true;
  }

  /** Its terminal response is held: no queue takes it yet. */
  markHeld(id: string, info: HoldInfo): void {
    const row = this.#rows.get(id);
    if (row) row.held = { ...info, since: this.#now() };
  }

  /** Its held response was routed (or given up): it is no longer held. */
  release(id: string): void {
    const row = this.#rows.get(id);
    if (row) row.held = undefined;
  }

  /** Its request is settled: the row goes. */
  remove(id: string): void {
    this.#rows.delete(id);
  }

  /** Task processes running now: spawned and not exited. */
  get runningCount(): number {
    let count = 0;
    for (const row of this.#rows.values()) {
      if (row.pid !== undefined && !row.exited) count++;
    }
    return count;
  }

  /** Requests in the table. */
  get size(): number {
    return this.#rows.size;
  }

  /** Every row, oldest delivery first. */
  list(): TaskSnapshot[] {
    const now = this.#now();
    return [...this.#rows.values()].map((row) => snapshot(row, now));
  }

  /** The row of `id`, if the runner is working on it. */
  get(id: string): TaskSnapshot | undefined {
    const row = this.#rows.get(id);
    return row ? snapshot(row, this.#now()) : undefined;
  }
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

function snapshot(row: Row, now: number): TaskSnapshot {
  return {
    id: row.id,
    script: row.script,
    pid: row.pid ?? null,
    state: row.held ? "held" : row.state,
    received: iso(row.received)!,
    started: iso(row.started),
    elapsed: Math.max(0, now - (row.started ?? row.received)) / 1000,
    exited: row.exited,
    progressMessages: row.progressMessages,
    lastProgress: iso(row.lastProgress),
    lastProgressBytes: row.lastProgressBytes ?? null,
    cancelRequested: row.cancelRequested,
    deliveries: row.deliveries,
    lostRuns: row.lostRuns,
    held: row.held ? { ...row.held, since: iso(row.held.since)! } : null,
  };
}
