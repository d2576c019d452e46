import type { ChannelModel } from "amqplib";
import { corkMuxerPasses } from "../../src/broker/corked_writes.ts";
import { assert, assertEquals, assertThrows } from "../helpers/assert.ts";

function fakeModel(pass: (log: string[]) => void) {
  const log: string[] = [];
  const muxer = {
    out: { cork: () => log.push("cork"), uncork: () => log.push("uncork") },
    _readIncoming() {
      pass(log);
    },
  };
  const model = { connection: { muxer } } as unknown as ChannelModel;
  return { model, muxer, log };
}

Deno.test("corkMuxerPasses() corks the socket for each pass of the muxer", async (t) => {
  await t.step("around the pass's writes", () => {
    const { model, muxer, log } = fakeModel((log) => log.push("write", "write"));
    assert(corkMuxerPasses(model));
    muxer._readIncoming();
    assertEquals(log, ["cork", "write", "write", "uncork"]);
  });
  await t.step("uncorked when the pass throws", () => {
    const { model, muxer, log } = fakeModel(() => {
      throw new Error("boom");
    });
    corkMuxerPasses(model);
    assertEquals(assertThrows(() => muxer._readIncoming(), Error).message, "boom");
    assertEquals(log, ["cork", "uncork"]);
  });
  await t.step("nothing done where amqplib's internals differ", () => {
    assertEquals(corkMuxerPasses({} as ChannelModel), false);
    const noCork = { connection: { muxer: { out: {}, _readIncoming() {} } } };
    assertEquals(corkMuxerPasses(noCork as unknown as ChannelModel), false);
  });
});
