/**
 * Messages published in one turn leave in one socket write, and all of them arrive.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { brokerEndpoints } from "../../src/config/amqp_url.ts";
import { connectEndpoint } from "../../src/broker/connect.ts";
import { assert, assertEquals } from "../helpers/assert.ts";
import { AMQP_URL } from "../helpers/broker_harness.ts";

interface Socket {
  _write(...args: unknown[]): void;
  _writev?(...args: unknown[]): void;
}

// Counts the socket's writes (a write, or a writev of what was corked).
function countWrites(socket: Socket): { count: number } {
  const counter = { count: 0 };
  const write = socket._write;
  socket._write = function (this: Socket, ...args: unknown[]) {
    counter.count++;
    return write.apply(this, args);
  };
  const writev = socket._writev;
  if (writev) {
    socket._writev = function (this: Socket, ...args: unknown[]) {
      counter.count++;
      return writev.apply(this, args);
    };
  }
  return counter;
}

Deno.test("Messages published in one turn go out in one socket write, all of them", async () => {
  const endpoint = brokerEndpoints(AMQP_URL, { username: "guest", password: "guest" })[0]!;
  const model = await connectEndpoint(endpoint, { timeoutMs: 10_000, connectionName: "cork" });
  try {
    const channel = await model.createConfirmChannel();
    const { queue } = await channel.assertQueue("", { exclusive: true });
    const socket = (model as unknown as { connection: { stream: Socket } }).connection.stream;
    const writes = countWrites(socket);
    const count = 50;
    const confirmed: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      confirmed.push(
        new Promise((resolve, reject) =>
          channel.sendToQueue(queue, Buffer.from(String(i)), {}, (error) => {
            if (error) reject(error);
            else resolve();
          })
        ),
      );
    }
    await Promise.all(confirmed);
    assert(writes.count <= 2, `${count} messages took ${writes.count} socket writes`);
    const received: string[] = [];
    const all = Promise.withResolvers<void>();
    await channel.consume(queue, (message) => {
      if (!message) return;
      received.push(new TextDecoder().decode(message.content));
      if (received.length === count) all.resolve();
    }, { noAck: true });
    await all.promise;
    assertEquals(received, Array.from({ length: count }, (_, i) => String(i)));
  } finally {
    await model.close();
  }
});
