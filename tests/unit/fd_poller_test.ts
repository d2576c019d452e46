import { assert, assertEquals } from "../helpers/assert.ts";
import { FdPoller } from "../../src/os/fd_poller.ts";
import { O_CLOEXEC, O_NONBLOCK, POLLIN, POLLOUT, requireLibc } from "../../src/os/libc.ts";

const lib = requireLibc();
const POLLHUP = 0x10;
const POLLNVAL = 0x20;

/** A non-blocking pipe: `[read end, write end]`. */
function pipe(): [number, number] {
  const fds = new Int32Array(2);
  assertEquals(lib.pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  return [fds[0]!, fds[1]!];
}

function writeByte(fd: number): void {
  assertEquals(Number(lib.write(fd, new Uint8Array([1]), 1n)), 1);
}

/** Settles with the wait's events, or "pending" when it has not settled within `ms`. */
function settled<T>(promise: Promise<T>, ms = 200): Promise<T | "pending"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<"pending">((resolve) => timer = setTimeout(() => resolve("pending"), ms)),
  ]).finally(() => clearTimeout(timer));
}

Deno.test("FdPoller: a wait added while another is pending takes effect without a wake-up", async () => {
  const poller = new FdPoller(lib);
  const [readA, writeA] = pipe();
  const [readB, writeB] = pipe();
  try {
    const a = poller.wait(readA, POLLIN);
    const b = poller.wait(readB, POLLIN);
    writeByte(writeB);
    assertEquals(await b, POLLIN);
    assertEquals(await settled(a), "pending", "A has nothing to read yet");
    writeByte(writeA);
    assertEquals(await a, POLLIN);
  } finally {
    for (const fd of [readA, writeA, readB, writeB]) lib.close(fd);
  }
});

Deno.test("FdPoller: each wait reports once, and the same descriptor can be waited on again", async () => {
  const poller = new FdPoller(lib);
  const [read, write] = pipe();
  try {
    writeByte(write);
    assertEquals(await poller.wait(read, POLLIN), POLLIN, "ready at once: reported");
    // Still readable (nothing was read): armed again, it reports again.
    assertEquals(await poller.wait(read, POLLIN), POLLIN);
    lib.read(read, new Uint8Array(8), 8n);
    const next = poller.wait(read, POLLIN);
    assertEquals(await settled(next), "pending");
    lib.close(write);
    assert((await next & POLLHUP) !== 0, "the writer's close is a hang-up");
  } finally {
    lib.close(read);
  }
});

Deno.test("FdPoller: release() ends a wait with 0, and the last release ends the waiting call", async () => {
  const poller = new FdPoller(lib);
  const [read, write] = pipe();
  try {
    const wait = poller.wait(read, POLLIN);
    poller.release(read);
    assertEquals(await wait, 0);
    // The test's op sanitizer fails it if the epoll_wait call were left pending.
  } finally {
    lib.close(read);
    lib.close(write);
  }
});

Deno.test("FdPoller: a number closed without release() and reused is watched anew", async () => {
  const poller = new FdPoller(lib);
  const [read, write] = pipe();
  writeByte(write);
  assertEquals(await poller.wait(read, POLLIN), POLLIN);
  lib.close(read);
  lib.close(write);
  // The kernel hands out the lowest free numbers: the new pipe most likely reuses them.
  const [reused, writer] = pipe();
  try {
    const wait = poller.wait(reused, POLLOUT | POLLIN);
    assertEquals(await settled(wait), "pending", "an empty pipe's read end is not readable");
    writeByte(writer);
    assertEquals(await wait, POLLIN);
  } finally {
    lib.close(reused);
    lib.close(writer);
  }
});

Deno.test("FdPoller: a descriptor epoll cannot watch is reported at once", async () => {
  const poller = new FdPoller(lib);
  const path = await Deno.makeTempFile();
  const fd = lib.open(new TextEncoder().encode(`${path}\0`), O_CLOEXEC, 0);
  assert(fd >= 0);
  try {
    // A regular file is always ready, as poll() says; a closed descriptor is invalid.
    assertEquals(await poller.wait(fd, POLLIN), POLLIN);
    assertEquals(await poller.wait(1_000_000, POLLIN), POLLNVAL);
  } finally {
    lib.close(fd);
    await Deno.remove(path);
  }
});
