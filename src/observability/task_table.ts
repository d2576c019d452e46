/**
 * What the runner is working on now, for `GET /tasks`, `taskrunner ps` and `inspect`: one row
 * per request from its delivery to its settlement. The runner writes it; the engine knows
 * nothing of it.
 *
 * @module
 */

/**
 * Where a request stands: its task is being set up (cancellation queue, pipes), its process
 * runs, a cancellation is stopping it, or (its request acknowledged) its terminal response is
 * held by the publisher because no queue takes it yet (the server is away).
 */
export type TaskState = "starting" | "running" | "cancelling" | "held";

/** A held response, as a `held` row shows it. */
export interface HoldInfo {
  /** The status held: `SUCCESS`, `FAILED`, `CANCELLED` (or `RUNNING`, a progress message). */
  status: string;
  /** The routing key it is published with. */
  routingKey: string;
  /** Why it is held: no queue bound (`unrouted`), nacked, write access refused. */
  reason: string;
  /** When it is given up unless a queue takes it before. */
  giveUpAt: string;
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
    state: row.state,
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
    held: null,
  };
}

/**
 * A terminal response the publisher holds, as it lists it: its request is acknowledged (its
 * row is gone), and the response waits for a queue until its time limit.
 */
export interface HeldEntry {
  taskId: string | undefined;
  script?: string | undefined;
  status: string | undefined;
  routingKey: string;
  /** Why it is held (no route, nacked, write access refused). */
  reason: string;
  /** When it was first held, and when it is given up (epoch ms). */
  heldSince: number;
  giveUpAt: number;
}

/**
 * The table's rows, then a `held` row for each task whose responses are all the publisher
 * still has of it (the latest held response of each task id; a task still in the table
 * shows as its row).
 */
export function withHeldTasks(
  table: TaskTable,
  held: () => readonly HeldEntry[],
  now: () => number = Date.now,
): { list(): TaskSnapshot[]; get(id: string): TaskSnapshot | undefined } {
  const heldRows = (): Map<string, TaskSnapshot> => {
    const rows = new Map<string, TaskSnapshot>();
    for (const entry of held()) {
      if (entry.taskId === undefined || table.get(entry.taskId)) continue;
      rows.set(entry.taskId, heldSnapshot(entry as HeldEntry & { taskId: string }, now()));
    }
    return rows;
  };
  return {
    list: () => [...table.list(), ...heldRows().values()],
    get: (id) => table.get(id) ?? heldRows().get(id),
  };
}

function heldSnapshot(entry: HeldEntry & { taskId: string }, now: number): TaskSnapshot {
  return {
    id: entry.taskId,
    script: entry.script ?? "",
    pid: null,
    state: "held",
    received: iso(entry.heldSince)!,
    started: null,
    elapsed: Math.max(0, now - entry.heldSince) / 1000,
    exited: true,
    progressMessages: 0,
    lastProgress: null,
    lastProgressBytes: null,
    cancelRequested: false,
    deliveries: 0,
    lostRuns: 0,
    held: {
      status: entry.status ?? "",
      routingKey: entry.routingKey,
      reason: entry.reason,
      since: iso(entry.heldSince)!,
      giveUpAt: iso(entry.giveUpAt)!,
    },
  };
}
