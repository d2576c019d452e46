import { errno, type Libc, O_CLOEXEC, O_NONBLOCK, POLLIN, requireLibc } from "./libc.ts";

const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const EPOLLONESHOT = 1 << 30;
const EPERM = 1;
const ENOENT = 2;
const EEXIST = 17;
const POLLNVAL = 0x20;
const MAX_EVENTS = 64;
// struct epoll_event { uint32_t events; uint64_t data; }: packed on x86_64, aligned elsewhere.
const PACKED = Deno.build.arch === "x86_64";
const EVENT_BYTES = PACKED ? 12 : 16;
const DATA_OFFSET = PACKED ? 4 : 8;
// epoll_wait fails only on a bad argument (EINTR aside): give up rather than spin.
const MAX_FAILED_WAITS = 100;
// Microtask turns a woken waiter's continuation gets before events are looked for in place.
const WAKE_HOPS = 4;

interface Waiter {
  events: number;
  resolve: (revents: number) => void;
}

/**
 * Waits for many file descriptors at once with one `epoll_wait()` call running on one thread,
 * and only while something is waited for. Each wait arms its descriptor once
 * (`EPOLLONESHOT`) in an epoll set the call is already watching: a new wait takes effect at
 * once, without waking the call up (a `poll()` set would have to be rebuilt for each).
 * An eventfd wakes the call up when nothing is left to wait for, so that it ends.
 */
export class FdPoller {
  readonly #lib: Libc;
  readonly #epollFd: number;
  readonly #wakeFd: number;
  readonly #waiters = new Map<number, Waiter>();
  /** Descriptors in the epoll set (armed, or disarmed after their event). */
  readonly #registered = new Set<number>();
  readonly #control = new Uint8Array(EVENT_BYTES);
  readonly #events = new Uint8Array(EVENT_BYTES * MAX_EVENTS);
  readonly #wakeBytes = new Uint8Array(8);
  #polling = false;

  constructor(lib: Libc = requireLibc()) {
    this.#lib = lib;
    this.#epollFd = lib.epoll_create1(O_CLOEXEC);
    if (this.#epollFd < 0) throw new Error(`Cannot create an epoll set: errno ${errno(lib)}`);
    this.#wakeFd = lib.eventfd(0, O_NONBLOCK | O_CLOEXEC);
    if (this.#wakeFd < 0) throw new Error(`Cannot create an eventfd: errno ${errno(lib)}`);
    if (this.#ctl(EPOLL_CTL_ADD, this.#wakeFd, POLLIN) < 0) {
      throw new Error(`Cannot watch the poller's eventfd: errno ${errno(lib)}`);
    }
  }

  /**
   * Resolves when `fd` is ready for `events` (POLLIN or POLLOUT), has an error or hang-up,
   * or `release(fd)` is called. One waiter per descriptor.
   *
   * @returns the events reported (`revents`), 0 when woken without any
   */
  wait(fd: number, events: number): Promise<number> {
    return new Promise((resolve) => {
      this.#waiters.get(fd)?.resolve(0);
      const now = this.#arm(fd, events);
      if (now !== undefined) {
        this.#waiters.delete(fd);
        resolve(now);
        return;
      }
      this.#waiters.set(fd, { events, resolve });
      if (!this.#polling) {
        this.#polling = true;
        void this.#loop();
      }
    });
  }

  /** Ends a wait on `fd` at once, and forgets the descriptor: call it before closing it. */
  release(fd: number): void {
    const waiter = this.#waiters.get(fd);
    this.#waiters.delete(fd);
    waiter?.resolve(0);
    // Only an armed descriptor must leave the set now (a copy of it in a child being spawned
    // would keep it there past its close); one whose event came is disarmed, and leaves the
    // set with its close. A call saved at most descriptors' end.
    if (this.#registered.delete(fd) && waiter) this.#ctl(EPOLL_CTL_DEL, fd, 0);
    // With nothing left to wait for, the call must end: a pending one keeps the process alive.
    if (this.#polling && this.#waiters.size === 0) {
      const one = new Uint8Array(8);
      one[0] = 1;
      this.#lib.write(this.#wakeFd, one, 8n);
    }
  }

  /**
   * Forgets a descriptor no wait is pending on, without a call: its close takes it out of the
   * set. Call it before closing such a descriptor, so that the next one given its number is
   * added, not first modified in vain (ENOENT).
   */
  forget(fd: number): void {
    if (!this.#waiters.has(fd)) this.#registered.delete(fd);
    else this.release(fd);
  }

  /**
   * Arms `fd` for one report of `events`.
   *
   * @returns undefined once armed, or the events to report at once when it cannot be watched
   */
  #arm(fd: number, events: number): number | undefined {
    // A descriptor closed since its last wait left the set by itself; its number may be reused.
    let op = this.#registered.has(fd) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (this.#ctl(op, fd, events | EPOLLONESHOT) === 0) {
        this.#registered.add(fd);
        return undefined;
      }
      const code = errno(this.#lib);
      if (op === EPOLL_CTL_MOD && code === ENOENT) op = EPOLL_CTL_ADD;
      else if (op === EPOLL_CTL_ADD && code === EEXIST) op = EPOLL_CTL_MOD;
      else {
        this.#registered.delete(fd);
        // A regular file is always ready, as poll() says; a closed descriptor is invalid.
        return code === EPERM ? events : POLLNVAL;
      }
    }
    return POLLNVAL;
  }

  #ctl(op: number, fd: number, events: number): number {
    const view = new DataView(this.#control.buffer);
    view.setUint32(0, events, true);
    view.setBigUint64(DATA_OFFSET, BigInt(fd), true);
    return this.#lib.epoll_ctl(this.#epollFd, op, fd, this.#control);
  }

  async #loop(): Promise<void> {
    const view = new DataView(this.#events.buffer);
    let failed = 0;
    try {
      // Decided in the same turn as the waiters' wake-ups: a waiter that comes back from one
      // (read to empty, waits again) finds the loop stopped, and starts it again.
      let woken = 0;
      let inPlace = false;
      while (this.#waiters.size > 0) {
        let ready = 0;
        // Once after each blocking call, never twice in a row: microtask turns alone would
        // starve timers and the broker's socket while a task floods a pipe.
        if (woken > 0 && !inPlace) {
          // Let the waiters just woken run (read, publish, wait again) first; events that came
          // meanwhile are then taken in place, sparing the blocking call's hop to a pool thread
          // and back (a futex and an eventfd write each way).
          for (let hop = 0; hop < WAKE_HOPS; hop++) await null;
          if (this.#waiters.size === 0) break; // decided in this turn, as the loop's condition
          ready = this.#lib.epollWaitNow(this.#epollFd, this.#events, MAX_EVENTS, 0);
        }
        inPlace = ready > 0;
        if (!inPlace) {
          ready = await this.#lib.epoll_wait(this.#epollFd, this.#events, MAX_EVENTS, -1);
        }
        woken = 0;
        if (ready < 0) {
          // EINTR, most likely (errno cannot be read here: the call ran on another thread).
          if (++failed >= MAX_FAILED_WAITS) throw new Error("epoll_wait keeps failing");
          continue;
        }
        failed = 0;
        for (let i = 0; i < ready; i++) {
          const fd = view.getInt32(i * EVENT_BYTES + DATA_OFFSET, true);
          if (fd === this.#wakeFd) {
            this.#lib.read(this.#wakeFd, this.#wakeBytes, 8n);
            continue;
          }
          const waiter = this.#waiters.get(fd);
          if (!waiter) continue; // released meanwhile
          this.#waiters.delete(fd);
          woken++;
          waiter.resolve(view.getUint32(i * EVENT_BYTES, true) & 0xffff);
        }
      }
    } catch {
      // The set cannot be waited on: wake everyone, so that their next read or write reports it.
      for (const waiter of this.#waiters.values()) waiter.resolve(0);
      this.#waiters.clear();
    } finally {
      this.#polling = false;
    }
  }
}

let shared: FdPoller | undefined;

/** The process's poller. */
export function fdPoller(): FdPoller {
  shared ??= new FdPoller();
  return shared;
}
