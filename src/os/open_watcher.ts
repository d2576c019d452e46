import { type FdPoller, fdPoller } from "./fd_poller.ts";
import {
  cPath,
  EAGAIN,
  EINTR,
  errno,
  IN_OPEN,
  type Libc,
  O_CLOEXEC,
  O_NONBLOCK,
  POLLIN,
  requireLibc,
} from "./libc.ts";

// struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; }
const EVENT_BYTES = 16;

interface Watch {
  opens: number;
  /** Resolves the wait for `wanted` opens, if any. */
  wanted: number;
  resolve: (() => void) | undefined;
}

/** Counts the opens of one file, from {@linkcode OpenWatcher.watch}. */
export interface OpenWatch {
  /** Resolves once the file has been opened `count` times since the watch began (one wait at a time). */
  opened(count: number): Promise<void>;
  /** Ends the watch (and any wait on it). */
  close(): void;
}

/**
 * Tells when files are opened, through one inotify instance for the whole process (`IN_OPEN`),
 * read through the shared {@linkcode FdPoller}. One instance, never closed: closing an
 * inotify descriptor waits for the kernel's RCU grace period, ten milliseconds and more, and
 * would stall the event loop once per task.
 */
export class OpenWatcher {
  readonly #lib: Libc;
  readonly #poller: FdPoller;
  readonly #fd: number;
  readonly #watches = new Map<number, Watch>();
  readonly #events = new Uint8Array(16 * 1024);
  #reading = false;

  constructor(lib: Libc = requireLibc()) {
    this.#lib = lib;
    this.#poller = fdPoller();
    this.#fd = lib.inotify_init1(O_NONBLOCK | O_CLOEXEC);
    if (this.#fd < 0) throw new Error(`Cannot create an inotify instance: errno ${errno(lib)}`);
  }

  /**
   * Starts counting the opens of `path`; every open after this call counts.
   *
   * @throws when the file cannot be watched
   */
  watch(path: string): OpenWatch {
    const wd = this.#lib.inotify_add_watch(this.#fd, cPath(path), IN_OPEN);
    if (wd < 0) throw new Error(`Cannot watch "${path}": errno ${errno(this.#lib)}`);
    const watch: Watch = { opens: 0, wanted: 0, resolve: undefined };
    this.#watches.set(wd, watch);
    return {
      opened: (count) => {
        if (watch.opens >= count || !this.#watches.has(wd)) return Promise.resolve();
        return new Promise((resolve) => {
          watch.wanted = count;
          watch.resolve = resolve;
          this.#read();
        });
      },
      close: () => {
        if (this.#watches.get(wd) !== watch) return;
        this.#watches.delete(wd);
        this.#lib.inotify_rm_watch(this.#fd, wd);
        watch.resolve?.();
        // Let the reading loop look again: with nothing left to wait for, it stops (a poll
        // left waiting would keep the process alive).
        if (this.#reading) this.#poller.release(this.#fd);
      },
    };
  }

  #read(): void {
    if (this.#reading) return;
    this.#reading = true;
    void this.#readLoop();
  }

  /**
   * Counts every open queued so far, at once. The kernel merges an event into the previous
   * one when that is identical and unread: two opens of a file seen as one. A writer calls
   * this right after its own open, so that the task's open is a second event, not merged.
   */
  drain(): void {
    while (this.#readEvents() > 0);
  }

  async #readLoop(): Promise<void> {
    try {
      while (true) {
        // Decided in the same turn as the wait that ends it: a wait that begins after this
        // must find the loop stopped and start it again, or its open would never be seen.
        if (![...this.#watches.values()].some((watch) => watch.resolve)) break;
        if (this.#readEvents() === 0) await this.#poller.wait(this.#fd, POLLIN);
      }
    } catch {
      // The events cannot be read: let every waiter go on (a writer then closes its FIFO).
      for (const watch of this.#watches.values()) {
        watch.resolve?.();
        watch.resolve = undefined;
      }
    }
    this.#reading = false;
  }

  /** Reads and counts the queued events; returns how many bytes were read (0: none queued). */
  #readEvents(): number {
    const n = Number(this.#lib.read(this.#fd, this.#events, BigInt(this.#events.length)));
    if (n <= 0) {
      const code = n === 0 ? EAGAIN : errno(this.#lib);
      if (code === EINTR) return this.#readEvents();
      if (code !== EAGAIN) throw new Error(`Cannot read inotify events: errno ${code}`);
      return 0;
    }
    const view = new DataView(this.#events.buffer);
    for (let at = 0; at + EVENT_BYTES <= n; at += EVENT_BYTES + view.getUint32(at + 12, true)) {
      if ((view.getUint32(at + 4, true) & IN_OPEN) === 0) continue;
      const watch = this.#watches.get(view.getInt32(at, true));
      if (!watch) continue;
      watch.opens++;
      if (watch.resolve && watch.opens >= watch.wanted) {
        watch.resolve();
        watch.resolve = undefined;
      }
    }
    return n;
  }
}

let shared: OpenWatcher | undefined;

/** The process's open watcher. */
export function openWatcher(): OpenWatcher {
  shared ??= new OpenWatcher();
  return shared;
}
