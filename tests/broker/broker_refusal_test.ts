/**
 * A refused login (wrong password, missing vhost, no permission on it) is an ERROR log line
 * with the broker's reason, the user's name masked in it as everywhere else.
 *
 * @module
 */
import { brokerEndpoints } from "../../src/config/amqp_url.ts";
import { BrokerRefusedError, connectEndpoint } from "../../src/broker/connect.ts";
import { handshakeRefusal } from "../../src/broker/handshake_refusal.ts";
import { assert, assertEquals, assertMatch, assertNotIncludes } from "../helpers/assert.ts";
import { assertRejects } from "../helpers/assert.ts";
import { AMQP_URL } from "../helpers/broker_harness.ts";
import { brokerCtl, uniqueNames } from "../helpers/ops_harness.ts";
import { startRunner } from "../helpers/serve_harness.ts";

const BROKER = new URL(AMQP_URL);

// A user of this test's own, with a vhost it may use and the default one it may not.
async function refusalSetup(): Promise<
  AsyncDisposable & { user: string; password: string; vhost: string }
> {
  const id = crypto.randomUUID().slice(0, 8);
  const user = `refusal-${id}`;
  const password = `pw-${crypto.randomUUID()}`;
  const vhost = `refusal-vhost-${id}`;
  await brokerCtl(["add_user", user, password]);
  await brokerCtl(["add_vhost", vhost]);
  await brokerCtl(["set_permissions", "-p", vhost, user, ".*", ".*", ".*"]);
  return {
    user,
    password,
    vhost,
    [Symbol.asyncDispose]: async () => {
      await brokerCtl(["delete_user", user]).catch(() => "");
      await brokerCtl(["delete_vhost", vhost]).catch(() => "");
    },
  };
}

function endpoint(user: string, password: string, vhost: string) {
  const address = `amqp://${BROKER.host}/${encodeURIComponent(vhost)}`;
  return brokerEndpoints(address, { username: user, password })[0]!;
}

Deno.test("connectEndpoint() says the broker's reason for a refused login", async (t) => {
  await using setup = await refusalSetup();
  const { user, password, vhost } = setup;
  const cases = [
    ["a wrong password", endpoint(user, "wrong", vhost), /ACCESS_REFUSED/],
    [
      "a vhost that does not exist",
      endpoint(user, password, `${vhost}-missing`),
      /vhost .*not found/,
    ],
    ["a vhost the user may not use", endpoint(user, password, "/"), /access to vhost '\/' refused/],
  ] as const;
  for (const [name, target, reason] of cases) {
    await t.step(name, async () => {
      const error = await assertRejects(
        () => connectEndpoint(target, { timeoutMs: 10_000, connectionName: "refusal-test" }),
        BrokerRefusedError,
      );
      assertMatch(error.reason, reason);
      assertMatch(error.message, new RegExp(`user "r\\*\\*\\*"`));
      assertNotIncludes(error.message, user, "the user's name is masked");
      assertNotIncludes(error.message, password);
    });
  }
  await t.step("the handshake of the reason is accepted once the vhost is allowed", async () => {
    assertEquals(
      await handshakeRefusal(endpoint(user, password, vhost), { timeoutMs: 10_000 }),
      undefined,
    );
  });
});

Deno.test("serve logs a refused vhost as an ERROR with the broker's reason", async () => {
  await using setup = await refusalSetup();
  const names = uniqueNames("refusal");
  await using runner = startRunner(names, {
    amqpUrl: `amqp://${BROKER.host}/${encodeURIComponent(setup.vhost)}-missing`,
    mqUsername: setup.user,
    mqPassword: setup.password,
  });
  const deadline = Date.now() + 20_000;
  while (!runner.logs.some((line) => line.includes("Broker refused the login"))) {
    assert(Date.now() < deadline, `no refusal logged:\n${runner.logs.join("")}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const line = runner.logs.find((line) => line.includes("Broker refused the login"))!;
  assertMatch(line, /^\S+ ERROR /);
  assertMatch(line, /NOT_ALLOWED - vhost .*-missing not found/);
  assertMatch(line, /url=amqp:\/\/r\*\*\*:\*\*\*@/);
  for (const logged of runner.logs) {
    assertNotIncludes(logged, setup.user, "the user's name is masked in every line");
    assertNotIncludes(logged, setup.password);
  }
});
