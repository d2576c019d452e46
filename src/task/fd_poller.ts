import { errno, type Libc, O_CLOEXEC, O_NONBLOCK, POLLIN, requireLibc } from "./libc.ts";

const POLLFD_BYTES = 8; // struct pollfd { int fd; short events; short revents; }

interface Waiter {
  events: number;
  resolve: (revents: number) => void;
}

/**
 * Waits for many file descriptors at once with one `poll()` call running on one thread, and
 * only while something is waited for. An eventfd wakes the call up when the set changes.
 */
export class FdPoller {
  readonly #lib: Libc;
  readonly #wakeFd: number;
  readonly #waiters = new Map<number, Waiter>();
  readonly #wakeBytes = new Uint8Array(8);
  #polling = false;

  constructor(lib: Libc = requireLibc()) {
    this.#lib = lib;
    this.#wakeFd = lib.eventfd(0, O_NONBLOCK | O_CLOEXEC);
    if (this.#wakeFd < 0) throw new Error(`Cannot create an eventfd: errno ${errno(lib)}`);
  }

  /**
   * Resolves when `fd` is ready for `events` (POLLIN or POLLOUT), has an error or hang-up,
   * or `release(fd)` is called. One waiter per descriptor.
   *
   * @returns the events `poll()` reported (`revents`), 0 when woken without any
   */
  wait(fd: number, events: number): Promise<number> {
    return new Promise((resolve) => {
      this.#waiters.get(fd)?.resolve(0);
      this.#waiters.set(fd, { events, resolve });
      this.#kick();
    });
  }

  /** Ends a wait on `fd` at once (before the descriptor is closed). */
  release(fd: number): void {
    const waiter = this.#waiters.get(fd);
    if (!waiter) return;
    this.#waiters.delete(fd);
    waiter.resolve(0);
    this.#kick();
  }

  #kick(): void {
    if (!this.#polling) {
      this.#polling = true;
      void this.#loop();
      return;
    }
    const one = new Uint8Array(8);
    one[0] = 1;
    this.#lib.write(this.#wakeFd, one, 8n);
  }

  async #loop(): Promise<void> {
    try {
      await this.#pollUntilIdle();
    } catch {
      // poll() itself failed: wake everyone, so that their next read or write reports it.
      this.#polling = false;
      for (const waiter of this.#waiters.values()) waiter.resolve(0);
      this.#waiters.clear();
    }
  }

  async #pollUntilIdle(): Promise<void> {
    while (true) {
      // Decided in the same turn as the waiters' wake-ups: a waiter that comes back from one
      // (read to empty, waits again) must find the loop stopped, or its kick would be lost.
      if (this.#waiters.size === 0) {
        this.#polling = false;
        return;
      }
      const fds = [this.#wakeFd, ...this.#waiters.keys()];
      const table = new Uint8Array(fds.length * POLLFD_BYTES);
      const view = new DataView(table.buffer);
      fds.forEach((fd, i) => {
        view.setInt32(i * POLLFD_BYTES, fd, true);
        view.setInt16(i * POLLFD_BYTES + 4, i === 0 ? POLLIN : this.#waiters.get(fd)!.events, true);
      });
      const ready = await this.#lib.poll(table, BigInt(fds.length), -1);
      if (ready < 0) continue; // EINTR: poll again
      if (view.getInt16(6, true) !== 0) this.#lib.read(this.#wakeFd, this.#wakeBytes, 8n);
      for (let i = 1; i < fds.length; i++) {
        const revents = view.getInt16(i * POLLFD_BYTES + 6, true);
        if (revents === 0) continue;
        const fd = fds[i]!;
        const waiter = this.#waiters.get(fd);
        this.#waiters.delete(fd);
        waiter?.resolve(revents);
      }
    }
  }
}

let shared: FdPoller | undefined;

/** The process's poller. */
export function fdPoller(): FdPoller {
  shared ??= new FdPoller();
  return shared;
}
