import {
  assert,
  assertEquals,
  assertMatch,
  assertNotIncludes,
  assertThrows,
} from "../helpers/assert.ts";
import {
  BROKER_SETTINGS,
  childEnvironment,
  ConfigError,
  ENGINE_SETTINGS,
  LOG_SETTINGS,
  optionKey,
  requestQueueName,
  resolveSettings,
  RUNNER_SETTINGS,
} from "../../src/config/settings.ts";

type Sources = { options?: Record<string, unknown>; env?: Record<string, string | undefined> };

function sources({ options = {}, env = {} }: Sources = {}) {
  return { options, env };
}

function configError(fn: () => unknown): ConfigError {
  const error = assertThrows(fn, ConfigError);
  assertEquals(error.exitCode, 2);
  assertEquals(error.name, "ConfigError");
  return error;
}

Deno.test("resolveSettings() takes a flag over the environment over the default", async (t) => {
  await t.step("default", () => {
    assertEquals(resolveSettings(RUNNER_SETTINGS, sources()).concurrency, 32);
    assertEquals(resolveSettings(BROKER_SETTINGS, sources()).requestType, "terarium");
  });
  await t.step("environment over default", () => {
    const env = { TERARIUM_TASKRUNNER_REQUEST_CONCURRENCY: "4" };
    assertEquals(resolveSettings(RUNNER_SETTINGS, sources({ env })).concurrency, 4);
  });
  await t.step("flag over environment", () => {
    const env = { TERARIUM_TASKRUNNER_REQUEST_CONCURRENCY: "4" };
    const options = { concurrency: "7" };
    assertEquals(resolveSettings(RUNNER_SETTINGS, sources({ env, options })).concurrency, 7);
  });
  await t.step("a variable set to undefined counts as unset", () => {
    const env = { TERARIUM_TASKRUNNER_REQUEST_CONCURRENCY: undefined };
    assertEquals(resolveSettings(RUNNER_SETTINGS, sources({ env })).concurrency, 32);
  });
});

Deno.test("resolveSettings() resolves every group with no input to its defaults", () => {
  const broker = resolveSettings(BROKER_SETTINGS, sources());
  assertEquals(broker.amqpUrl, "amqp://localhost:5672");
  assertEquals(broker.durableQueues, false);
  const engine = resolveSettings(ENGINE_SETTINGS, sources());
  assertEquals(engine.allowedScripts, []);
  assertEquals(engine.uid, undefined);
  assertEquals(engine.pipeArgStyle, "underscore");
  const runner = resolveSettings(RUNNER_SETTINGS, sources());
  assertEquals(runner.httpPort, 0);
  assertEquals(resolveSettings(LOG_SETTINGS, sources()), { logLevel: "info", logFormat: "text" });
});

Deno.test("resolveSettings() coerces numbers from text", () => {
  const engine = resolveSettings(
    ENGINE_SETTINGS,
    sources({
      env: { TERARIUM_TASKRUNNER_KILL_GRACE_SECONDS: "2.5", TERARIUM_TASKRUNNER_UID: "1000" },
      options: { logTailBytes: "4096" },
    }),
  );
  assertEquals(engine.killGraceSeconds, 2.5);
  assertEquals(engine.logTailBytes, 4096);
  assertEquals(engine.uid, 1000);
  const emptyUid = resolveSettings(
    ENGINE_SETTINGS,
    sources({ env: { TERARIUM_TASKRUNNER_UID: "" } }),
  );
  assertEquals(emptyUid.uid, undefined, "an empty id is unset, not root");
});

Deno.test("resolveSettings() names the flag, the variable and the source of a wrong value", async (t) => {
  await t.step("from a flag", () => {
    const error = configError(() =>
      resolveSettings(RUNNER_SETTINGS, sources({ options: { concurrency: "zero" } }))
    );
    assertMatch(
      error.message,
      /^Invalid setting --concurrency \(TERARIUM_TASKRUNNER_REQUEST_CONCURRENCY\) from --concurrency: "zero" /,
    );
  });
  await t.step("from the environment", () => {
    const error = configError(() =>
      resolveSettings(
        RUNNER_SETTINGS,
        sources({ env: { TERARIUM_TASKRUNNER_REQUEST_CONCURRENCY: "-1" } }),
      )
    );
    assertMatch(error.message, /--concurrency/);
    assertMatch(error.message, /from TERARIUM_TASKRUNNER_REQUEST_CONCURRENCY: "-1"/);
  });
  await t.step("each kind of wrong value", () => {
    const cases: [Record<string, unknown>, string, Record<string, string>][] = [
      [RUNNER_SETTINGS, "TERARIUM_TASKRUNNER_REQUEST_CONCURRENCY", { x: "1.5" }],
      [RUNNER_SETTINGS, "TERARIUM_TASKRUNNER_REQUEST_CONCURRENCY", { x: "0" }],
      [RUNNER_SETTINGS, "TERARIUM_TASKRUNNER_REQUEST_CONCURRENCY", { x: "65536" }],
      [RUNNER_SETTINGS, "TERARIUM_TASKRUNNER_HTTP_PORT", { x: "70000" }],
      [RUNNER_SETTINGS, "TERARIUM_TASKRUNNER_QUEUE_TYPE", { x: "stream" }],
      [RUNNER_SETTINGS, "TERARIUM_TASKRUNNER_DRAIN_SECONDS", { x: "-1" }],
      [ENGINE_SETTINGS, "TERARIUM_TASKRUNNER_KILL_GRACE_SECONDS", { x: "soon" }],
      [ENGINE_SETTINGS, "TERARIUM_TASKRUNNER_PIPE_ARGS", { x: "camel" }],
      [ENGINE_SETTINGS, "TERARIUM_TASKRUNNER_UID", { x: "-1" }],
      [LOG_SETTINGS, "TERARIUM_TASKRUNNER_LOG_LEVEL", { x: "verbose" }],
    ];
    for (const [group, name, { x }] of cases) {
      const error = configError(() =>
        resolveSettings(group as typeof RUNNER_SETTINGS, sources({ env: { [name]: x } }))
      );
      assertMatch(error.message, new RegExp(`\\(${name}\\) from ${name}: `), `${name}=${x}`);
    }
  });
});

Deno.test("resolveSettings() never shows a secret's value", () => {
  const error = configError(() =>
    resolveSettings(BROKER_SETTINGS, sources({ options: { mqPassword: 31415926 } }))
  );
  assertMatch(error.message, /--mq-password \(TERARIUM_MQ_PASSWORD\)/);
  assertNotIncludes(error.message, "31415926");
});

Deno.test("resolveSettings() hides credentials of a wrong broker address", () => {
  const env = { TERARIUM_MQ_ADDRESSES: "http://user:Sup3rS3cret@host:5672" };
  const error = configError(() => resolveSettings(BROKER_SETTINGS, sources({ env })));
  assertMatch(error.message, /--amqp-url \(TERARIUM_MQ_ADDRESSES\)/);
  assertMatch(error.message, /must be an amqp:\/\/ or amqps:\/\/ URL/);
  assertNotIncludes(error.message, "Sup3rS3cret");
});

Deno.test("resolveSettings() accepts every form of spring.rabbitmq.addresses, and only those", async (t) => {
  const accepted = [
    "amqp://rabbit:5672",
    "amqps://rabbit/vhost",
    "amqp://localhost",
    "rabbit:5672",
    "localhost",
    "host1:5672,host2:5672",
    "amqp://host1:5672,amqp://host2:5672",
    "amqp://user:pw@rabbit/vh",
  ];
  for (const address of accepted) {
    await t.step(`accepts ${address}`, () => {
      const env = { TERARIUM_MQ_ADDRESSES: address };
      assertEquals(resolveSettings(BROKER_SETTINGS, sources({ env })).amqpUrl, address);
    });
  }
  await t.step("an empty variable means unset: the default", () => {
    const env = { TERARIUM_MQ_ADDRESSES: "", TERARIUM_TASKRUNNER_KILL_GRACE_SECONDS: "" };
    assertEquals(
      resolveSettings(BROKER_SETTINGS, sources({ env })).amqpUrl,
      "amqp://localhost:5672",
    );
  });
  for (const address of ["http://x", "ftp://rabbit:5672", "amqp://h1,http://h2", ",", "h:port"]) {
    await t.step(`rejects ${JSON.stringify(address)}`, () => {
      const env = { TERARIUM_MQ_ADDRESSES: address };
      const error = configError(() => resolveSettings(BROKER_SETTINGS, sources({ env })));
      assertMatch(error.message, /TERARIUM_MQ_ADDRESSES/);
    });
  }
});

Deno.test("resolveSettings() parses TERARIUM_DURABLE_QUEUES as a boolean", async (t) => {
  const durable = (value: string) =>
    resolveSettings(BROKER_SETTINGS, sources({ env: { TERARIUM_DURABLE_QUEUES: value } }))
      .durableQueues;
  await t.step("true and 1 are true", () => {
    assertEquals([durable("true"), durable("1"), durable("TRUE"), durable(" true ")], [
      true,
      true,
      true,
      true,
    ]);
  });
  await t.step("false and 0 are false", () => {
    assertEquals([durable("false"), durable("0"), durable("False")], [false, false, false]);
  });
  await t.step("anything else is an error", () => {
    for (const value of ["maybe", "2", "truthy"]) {
      const error = configError(() => durable(value));
      assertMatch(error.message, /--durable-queues \(TERARIUM_DURABLE_QUEUES\)/);
      assertMatch(error.message, /must be true or false/);
    }
  });
  await t.step("a bare --durable-queues flag is true", () => {
    const options = { durableQueues: true };
    const env = { TERARIUM_DURABLE_QUEUES: "false" };
    assertEquals(resolveSettings(BROKER_SETTINGS, sources({ options, env })).durableQueues, true);
  });
});

Deno.test("resolveSettings() reads the allowed scripts as a list", async (t) => {
  const allowed = (s: Sources) => resolveSettings(ENGINE_SETTINGS, sources(s)).allowedScripts;
  await t.step("comma-separated in the environment, trimmed, empties dropped", () => {
    const env = { TERARIUM_TASKRUNNER_ALLOWED_SCRIPTS: " gollm:* , mira:x,,  " };
    assertEquals(allowed({ env }), ["gollm:*", "mira:x"]);
  });
  await t.step("repeated flags", () => {
    assertEquals(allowed({ options: { allowScript: ["a.py", "b:*"] } }), ["a.py", "b:*"]);
  });
  await t.step("flags win over the environment", () => {
    const env = { TERARIUM_TASKRUNNER_ALLOWED_SCRIPTS: "x" };
    assertEquals(allowed({ env, options: { allowScript: ["y"] } }), ["y"]);
  });
  await t.step("no flags (commander's empty array) fall back to the environment", () => {
    const env = { TERARIUM_TASKRUNNER_ALLOWED_SCRIPTS: "x,y" };
    assertEquals(allowed({ env, options: { allowScript: [] } }), ["x", "y"]);
  });
  await t.step("a pattern with a .. segment is refused", () => {
    const error = assertThrows(
      () => allowed({ options: { allowScript: ["/srv/tasks/../*.py"] } }),
      ConfigError,
    );
    assertMatch(error.message, /--allow-script .*must not have a "\.\." segment/);
    assertEquals(allowed({ options: { allowScript: ["/srv/a..b/*.py"] } }), ["/srv/a..b/*.py"]);
  });
});

Deno.test("resolveSettings() reads the crash-loop limit: default 3, 0 turns it off", async (t) => {
  const limit = (s: Sources) => resolveSettings(RUNNER_SETTINGS, sources(s)).maxLostRuns;
  await t.step("default", () => assertEquals(limit({}), 3));
  await t.step("from the environment and the flag", () => {
    const env = { TERARIUM_TASKRUNNER_MAX_LOST_RUNS: "0" };
    assertEquals(limit({ env }), 0);
    assertEquals(limit({ env, options: { maxLostRuns: "5" } }), 5);
  });
  await t.step("not a whole, non-negative number", () => {
    for (const value of ["-1", "1.5", "many"]) {
      const error = assertThrows(() => limit({ options: { maxLostRuns: value } }), ConfigError);
      assertMatch(error.message, /--max-lost-runs \(TERARIUM_TASKRUNNER_MAX_LOST_RUNS\)/);
    }
  });
});

Deno.test("requestQueueName() appends the request type to the queue base name", () => {
  assertEquals(
    requestQueueName({ requestQueue: "terarium-request-queue", requestType: "gollm" }),
    "terarium-request-queue-gollm",
  );
  const defaults = resolveSettings(BROKER_SETTINGS, sources());
  assertEquals(requestQueueName(defaults), "terarium-request-queue-terarium");
});

Deno.test("childEnvironment() drops the broker settings and keeps the rest", () => {
  const env = childEnvironment({
    PATH: "/usr/bin",
    HOME: "/home/u",
    TERARIUM_MQ_PASSWORD: "secret",
    TERARIUM_MQ_USERNAME: "user",
    TERARIUM_MQ_ADDRESSES: "amqp://x",
    TERARIUM_MQ_ANYTHING_NEW: "x",
    TERARIUM_TASKRUNNER_REQUEST_TYPE: "gollm",
    OPENAI_API_KEY: "kept",
  });
  assertEquals(env, {
    PATH: "/usr/bin",
    HOME: "/home/u",
    TERARIUM_TASKRUNNER_REQUEST_TYPE: "gollm",
    OPENAI_API_KEY: "kept",
  });
});

Deno.test("optionKey() gives commander's camel-case key of a flag", () => {
  assertEquals(optionKey("--amqp-url <url>"), "amqpUrl");
  assertEquals(optionKey("--mq-password <password>"), "mqPassword");
  assertEquals(optionKey("--durable-queues [bool]"), "durableQueues");
  assertEquals(optionKey("--concurrency <n>"), "concurrency");
  assertEquals(optionKey("--allow-script <pattern>"), "allowScript");
  assertEquals(optionKey("--log-tail-bytes"), "logTailBytes");
});

Deno.test("every setting has a distinct flag key and environment variable", () => {
  const specs = [BROKER_SETTINGS, ENGINE_SETTINGS, RUNNER_SETTINGS, LOG_SETTINGS].flatMap((g) =>
    Object.values(g)
  );
  const keys = specs.map((spec) => optionKey(spec.flag));
  const envs = specs.map((spec) => spec.env);
  assertEquals(new Set(keys).size, keys.length);
  assertEquals(new Set(envs).size, envs.length);
  for (const env of envs) assert(env.startsWith("TERARIUM_"), env);
});

// Known bug in src/config/settings.ts (not fixed here: src/ is others' to edit). The redaction
// A password may hold "@", spaces or quotes: the whole user:password part is hidden.
Deno.test({
  name: "resolveSettings() hides a broker password that holds @, a space or a quote",

  fn: async (t) => {
    for (const password of ["Xq7@Zk9", "Sup3r S3cret", 'Qu0"te7', "Aa1@Bb2 Cc3"]) {
      await t.step(JSON.stringify(password), () => {
        const env = { TERARIUM_MQ_ADDRESSES: `http://user:${password}@host:5672/vh` };
        const error = configError(() => resolveSettings(BROKER_SETTINGS, sources({ env })));
        for (const part of password.split(/[@ "]/)) assertNotIncludes(error.message, part);
        assertMatch(error.message, /host:5672\/vh/);
      });
    }
  },
});

Deno.test("resolveSettings() reads the connection time limits", async (t) => {
  await t.step("defaults: 20 s per attempt, unhealthy after 300 s without a broker", () => {
    assertEquals(resolveSettings(BROKER_SETTINGS, sources()).connectTimeoutSeconds, 20);
    assertEquals(resolveSettings(RUNNER_SETTINGS, sources()).maxDisconnectedSeconds, 300);
  });
  await t.step("from the environment; 0 turns the health limit off", () => {
    const env = {
      TERARIUM_MQ_CONNECT_TIMEOUT_SECONDS: "2.5",
      TERARIUM_TASKRUNNER_MAX_DISCONNECTED_SECONDS: "0",
    };
    assertEquals(resolveSettings(BROKER_SETTINGS, sources({ env })).connectTimeoutSeconds, 2.5);
    assertEquals(resolveSettings(RUNNER_SETTINGS, sources({ env })).maxDisconnectedSeconds, 0);
  });
  await t.step("a connect timeout of 0 or less is an error", () => {
    for (const value of ["0", "-1", "soon"]) {
      const env = { TERARIUM_MQ_CONNECT_TIMEOUT_SECONDS: value };
      const error = configError(() => resolveSettings(BROKER_SETTINGS, sources({ env })));
      assertMatch(error.message, /--connect-timeout \(TERARIUM_MQ_CONNECT_TIMEOUT_SECONDS\)/);
    }
  });
});
