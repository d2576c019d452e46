/**
 * One socket write per pass of amqplib's muxer instead of one per message.
 *
 * amqplib queues each channel's frames and, once per event-loop turn (`setImmediate`), its
 * muxer moves them to the socket one message at a time: a `write()` each, which Deno sends at
 * once, one `sendto` each. A thousand running tasks publish a thousand progress responses a
 * second, and those writes were a quarter of the runner's main-thread time. Corked for the
 * pass, the socket takes every message the turn published and sends them in one write
 * (`writev`); the broker reads them at once too. Nothing waits longer: the pass uncorks as it
 * ends, in the same turn.
 *
 * @module
 */

import type { ChannelModel } from "amqplib";

/** The parts of amqplib's connection internals this relies on. */
interface Muxer {
  out: { cork(): void; uncork(): void };
  _readIncoming(): void;
}

/**
 * Makes each pass of the connection's muxer write through a corked socket. Does nothing (and
 * says so) where amqplib's internals are not as expected: messages then go out one write each,
 * as before.
 *
 * @returns whether the muxer now corks its passes
 */
export function corkMuxerPasses(model: ChannelModel): boolean {
  const muxer = muxerOf(model);
  if (!muxer) return false;
  const pass = muxer._readIncoming;
  const out = muxer.out;
  muxer._readIncoming = function corkedPass(this: Muxer) {
    out.cork();
    try {
      pass.call(this);
    } finally {
      out.uncork();
    }
  };
  return true;
}

function muxerOf(model: ChannelModel): Muxer | undefined {
  const connection = (model as unknown as { connection?: { muxer?: unknown } }).connection;
  const muxer = connection?.muxer as Partial<Muxer> | undefined;
  if (typeof muxer?._readIncoming !== "function") return undefined;
  const out = muxer.out as Partial<Muxer["out"]> | undefined;
  if (typeof out?.cork !== "function" || typeof out.uncork !== "function") return undefined;
  return muxer as Muxer;
}
