import { assert, assertEquals, assertMatch, assertNotIncludes } from "../helpers/assert.ts";
import { settlesWithin } from "../../src/util/async.ts";
import { makeRequest, outputText, ServerSide } from "../helpers/broker_harness.ts";
import { eventually } from "../helpers/engine.ts";
import { brokerCtl, freePort, get, uniqueNames } from "../helpers/ops_harness.ts";
import { fixture, startRunner, type TestRunner } from "../helpers/serve_harness.ts";
import { TcpProxy } from "../helpers/tcp_proxy.ts";
import { runCli } from "../helpers/cli_run.ts";
import { AMQP_URL, type TestNames } from "../helpers/broker_harness.ts";
import type { Channel } from "amqplib";
import { brokerEndpoints } from "../../src/config/amqp_url.ts";
import { BrokerConnection } from "../../src/broker/connection.ts";
import { ManagedChannel } from "../../src/broker/managed_channel.ts";
import { Logger } from "../../src/observability/log.ts";

/** Publishes an echo task and asserts that it ends in SUCCESS with its input as output. */
async function assertTaskFlows(server: ServerSide, names: TestNames, text: string): Promise<void> {
  const request = makeRequest({ script: fixture("echo.sh"), input: text }, names.routingKey);
  server.publishRequest(request);
  const responses = await server.terminal(request.id, 30_000);
  assertEquals(responses.at(-1)?.status, "SUCCESS");
  assertEquals(outputText(responses.at(-1)), text);
}

async function waitForLog(runner: TestRunner, part: string, timeoutMs = 20_000): Promise<void> {
  assert(
    await eventually(() => runner.logs.some((line) => line.includes(part)), timeoutMs),
    `log line with ${JSON.stringify(part)}`,
  );
}

/** A broker user of its own with a random password, deleted on dispose. */
async function brokerUser(): Promise<AsyncDisposable & { name: string; password: string }> {
  const name = `conntest-${crypto.randomUUID().slice(0, 8)}`;
  const password = `pw-${crypto.randomUUID()}`;
  await brokerCtl(["add_user", name, password]);
  await brokerCtl(["set_permissions", "-p", "/", name, ".*", ".*", ".*"]);
  return {
    name,
    password,
    [Symbol.asyncDispose]: async () => {
      await brokerCtl(["delete_user", name]);
    },
  };
}

Deno.test("serve fails over to the next address when the first is down, and on reconnect", async () => {
  const names = uniqueNames("failover");
  const closed = freePort();
  await using proxy = TcpProxy.start();
  await using server = await ServerSide.open(names);
  // The deployment's form: bare host:port, comma-separated.
  await using runner = startRunner(names, {
    amqpUrl: `127.0.0.1:${closed}, 127.0.0.1:${proxy.port}`,
  });
  await runner.ready;
  await assertTaskFlows(server, names, "first");
  assert(
    runner.logs.some((line) => line.includes(`127.0.0.1:${closed}`) && line.includes("next")),
    "the failed address is logged",
  );
  const accepted = proxy.accepted;
  proxy.cut();
  proxy.restore();
  await waitForLog(runner, "Broker connection lost");
  assert(await eventually(() => proxy.accepted > accepted, 20_000), "reconnected through the list");
  await assertTaskFlows(server, names, "after reconnect");
});

Deno.test("serve fails over from a black-holed address once the connect timeout fires", async () => {
  const names = uniqueNames("failoverhole");
  await using hole = TcpProxy.start();
  hole.blackHole();
  await using server = await ServerSide.open(names);
  const started = Date.now();
  await using runner = startRunner(names, {
    amqpUrl: `amqp://127.0.0.1:${hole.port},amqp://127.0.0.1:5672`,
    connectTimeout: "1",
  });
  await runner.ready;
  assert(Date.now() - started < 15_000, "the black hole held the attempt about a second");
  assertEquals(hole.accepted, 1, "the first address was tried");
  await assertTaskFlows(server, names, "past the hole");
});

Deno.test("credentials written in an address are used for it, not the user settings", async () => {
  const names = uniqueNames("addrcreds");
  await using user = await brokerUser();
  await using server = await ServerSide.open(names);
  await using runner = startRunner(names, {
    amqpUrl: `amqp://${user.name}:${encodeURIComponent(user.password)}@127.0.0.1:5672`,
    mqUsername: "guest",
    mqPassword: "not-the-password",
    logLevel: "debug",
  });
  await runner.ready;
  await assertTaskFlows(server, names, "as the address's user");
  assert(
    runner.logs.some((line) => line.includes(`${user.name[0]}***:***@`)),
    "the user is logged, masked",
  );
  for (const line of runner.logs) assertNotIncludes(line, user.password);
});

Deno.test("TERARIUM_MQ_PASSWORD_FILE: the password is read from the file and never logged", async () => {
  const names = uniqueNames("pwfile");
  await using user = await brokerUser();
  const file = await Deno.makeTempFile();
  try {
    // As `echo "$password" > file` or a mounted secret leaves it: a final newline.
    await Deno.writeTextFile(file, `${user.password}\n`);
    await using server = await ServerSide.open(names);
    await using runner = startRunner(names, {
      mqUsername: user.name,
      mqPassword: undefined,
      mqPasswordFile: file,
    });
    await runner.ready;
    await assertTaskFlows(server, names, "with the file's password");
    for (const line of runner.logs) assertNotIncludes(line, user.password);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("amqps:// connects through TLS with the CA of --mq-ca-file", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "taskrunner-tls-" });
  try {
    const { success, stderr } = await new Deno.Command("openssl", {
      args: [
        ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"],
        ...["-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`, "-subj", "/CN=localhost"],
        ...["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert(success, new TextDecoder().decode(stderr));
    const cert = await Deno.readTextFile(`${dir}/cert.pem`);
    const key = await Deno.readTextFile(`${dir}/key.pem`);
    await using proxy = TcpProxy.start(undefined, { tls: { cert, key } });

    await t.step("with the CA: connects, and tasks flow", async () => {
      const names = uniqueNames("amqps");
      await using server = await ServerSide.open(names);
      await using runner = startRunner(names, {
        amqpUrl: `amqps://127.0.0.1:${proxy.port}`,
        mqCaFile: `${dir}/cert.pem`,
      });
      await runner.ready;
      await assertTaskFlows(server, names, "over TLS");
      assert(runner.logs.some((line) => line.includes("amqps://")), "the TLS address is logged");
    });

    await t.step("without it: the self-signed certificate is refused", async () => {
      const names = uniqueNames("amqpsnoca");
      await using runner = startRunner(names, { amqpUrl: `amqps://127.0.0.1:${proxy.port}` });
      await waitForLog(runner, "Cannot connect to broker");
      const refused = runner.logs.find((line) => line.includes("Cannot connect to broker"))!;
      assertMatch(refused, /certificate/i);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a black-holed network: /healthz turns 503 past the limit, a new attempt connects once it is back", async () => {
  const names = uniqueNames("blackhole");
  await using proxy = TcpProxy.start();
  await using server = await ServerSide.open(names);
  const port = freePort();
  const health = `http://127.0.0.1:${port}/healthz`;
  await using runner = startRunner(names, {
    amqpUrl: `amqp://127.0.0.1:${proxy.port}`,
    heartbeat: "1",
    connectTimeout: "1",
    maxDisconnected: "3",
    httpPort: String(port),
    httpHost: "127.0.0.1",
  });
  await runner.ready;
  assertEquals((await get(health)).status, 200);

  proxy.blackHole();
  await waitForLog(runner, "Broker connection lost");
  const accepted = proxy.accepted;
  let down = { status: 0, body: "" };
  assert(
    await eventually(async () => {
      down = await get(health);
      return down.status === 503;
    }, 20_000),
    "unhealthy once disconnected for longer than the limit",
  );
  assertMatch(JSON.parse(down.body).reason, /not connected to the broker for \d+ s \(limit 3 s\)/);
  assert(proxy.accepted > accepted + 1, "attempts time out and are made again");
  await waitForLog(runner, "No answer to the connection or the AMQP handshake within 1000 ms");

  proxy.restore();
  assert(
    await eventually(async () => (await get(health)).status === 200, 20_000),
    "healthy again once connected",
  );
  await assertTaskFlows(server, names, "after the black hole");
});

Deno.test("TERARIUM_MQ_PASSWORD_FILE: unreadable, empty, or given with the password: exit 2", async (t) => {
  const empty = await Deno.makeTempFile();
  try {
    const cases: Array<[string, Record<string, string>, RegExp]> = [
      [
        "a missing file",
        { TERARIUM_MQ_PASSWORD_FILE: "/nonexistent/secret" },
        /--mq-password-file \(TERARIUM_MQ_PASSWORD_FILE\): cannot read "\/nonexistent\/secret"/,
      ],
      ["an empty file", { TERARIUM_MQ_PASSWORD_FILE: empty }, /is empty/],
      [
        "both the file and the password",
        { TERARIUM_MQ_PASSWORD_FILE: empty, TERARIUM_MQ_PASSWORD: "Xyzzy-Secret" },
        /give one of them/,
      ],
    ];
    for (const [what, env, message] of cases) {
      await t.step(what, async () => {
        const result = await runCli(["serve"], {
          env: { TERARIUM_MQ_ADDRESSES: "amqp://127.0.0.1:1", ...env },
        });
        assertEquals(result.code, 2, result.stderr);
        assertMatch(result.stderr, message);
        assertNotIncludes(result.stderr, "Xyzzy-Secret");
      });
    }
  } finally {
    await Deno.remove(empty);
  }
});

Deno.test("ManagedChannel gives up a setup that hangs when its connection dies, and opens on the next", async () => {
  await using proxy = TcpProxy.start();
  const url = new URL(AMQP_URL);
  const endpoints = brokerEndpoints(`amqp://127.0.0.1:${proxy.port}`, {
    username: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
  });
  const logger = new Logger({ level: "error", sink: () => {} });
  await using broker = new BrokerConnection(endpoints, {
    logger,
  });
  let setups = 0;
  const hanging = Promise.withResolvers<void>();
  const opened = Promise.withResolvers<Channel>();
  await using channel = new ManagedChannel<Channel>(broker, {
    name: "test",
    confirm: false,
    logger,
    handler: {
      // The first setup never ends: as a call left waiting by a black-holed connection.
      setup: async () => {
        if (++setups === 1) {
          hanging.resolve();
          await new Promise(() => {});
        }
      },
      opened: (ch) => opened.resolve(ch),
    },
  });
  broker.start();
  await hanging.promise;
  proxy.cut();
  proxy.restore();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ch = await Promise.race([
    opened.promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("The channel never opened again")), 20_000);
    }),
  ]).finally(() => clearTimeout(timer));
  assertEquals(setups, 2, "set up again on the next connection");
  assert(channel.current === ch, "the new channel is current");
});

Deno.test("BrokerConnection gives up a prepare that hangs when its connection dies, and reconnects", async () => {
  await using proxy = TcpProxy.start();
  const url = new URL(AMQP_URL);
  const endpoints = brokerEndpoints(`amqp://127.0.0.1:${proxy.port}`, {
    username: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
  });
  let prepares = 0;
  const hanging = Promise.withResolvers<void>();
  await using broker = new BrokerConnection(endpoints, {
    logger: new Logger({ level: "error", sink: () => {} }),
    // The first prepare never ends: as a declaration left waiting by a black-holed connection.
    prepare: async () => {
      if (++prepares === 1) {
        hanging.resolve();
        await new Promise(() => {});
      }
    },
  });
  broker.start();
  await hanging.promise;
  const connected = Promise.withResolvers<void>();
  broker.listen({ up: () => connected.resolve() });
  proxy.cut();
  proxy.restore();
  assert(await settlesWithin(connected.promise, 20_000), "connected again");
  assertEquals(prepares, 2, "prepared again on the next connection");
});
