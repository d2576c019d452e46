import { assert, assertEquals } from "../helpers/assert.ts";
import { makeRequest, ServerSide, testNames } from "../helpers/broker_harness.ts";
import { behave, eventually } from "../helpers/engine.ts";
import { fixture, startRunner } from "../helpers/serve_harness.ts";

// A task that reports once and then runs until it is cancelled.
function longRequest(server: ServerSide) {
  return makeRequest({
    script: fixture("behave.py"),
    input: behave({ progress: 1, sleep: 60 }),
  }, server.names.routingKey);
}

async function cancelAndExpectCancelled(server: ServerSide, id: string): Promise<void> {
  await server.cancel(id);
  const responses = await server.terminal(id);
  assertEquals(
    responses.map((response) => response.status),
    ["RUNNING", "RUNNING", "CANCELLING", "CANCELLED"],
  );
  assert(
    await eventually(async () => !await server.queueExists(id)),
    `the cancellation queue of ${id} is removed`,
  );
}

Deno.test("serve: a cancellation queue the server declared and bound is watched as it is", async () => {
  const names = testNames("cqdeclared");
  await using server = await ServerSide.open(names);
  await using runner = startRunner(names);
  await runner.ready;
  const request = longRequest(server);
  await server.declareCancellationQueue(request.id);
  server.publishRequest(request);
  await server.waitFor(() => server.statuses(request.id).length >= 2, 20_000, "progress");
  await cancelAndExpectCancelled(server, request.id);
});

Deno.test("serve: queues declared by the server and by nobody mix, and every task can be cancelled", async () => {
  const names = testNames("cqmixed");
  await using server = await ServerSide.open(names);
  await using runner = startRunner(names);
  await runner.ready;
  // Declared by the server; then one nobody declared (the runner's look-up misses); then one
  // declared again, while the runner no longer looks up first after that miss.
  const requests = [longRequest(server), longRequest(server), longRequest(server)];
  for (const [i, request] of requests.entries()) {
    if (i !== 1) await server.declareCancellationQueue(request.id);
    server.publishRequest(request);
    await server.waitFor(() => server.statuses(request.id).length >= 2, 20_000, "progress");
  }
  for (const request of requests) await cancelAndExpectCancelled(server, request.id);
});
