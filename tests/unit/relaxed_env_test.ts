import { assert, assertEquals, assertMatch, assertNotIncludes } from "../helpers/assert.ts";
import { assertThrows } from "../helpers/assert.ts";
import {
  BROKER_SETTINGS,
  childEnvironment,
  ConfigError,
  ENGINE_SETTINGS,
  resolveSettings,
  RUNNER_SETTINGS,
} from "../../src/config/settings.ts";
import { findSpellings, isSpellingOf, springProperty } from "../../src/config/relaxed_env.ts";

Deno.test("springProperty() names the Java runner's property of a documented variable", () => {
  assertEquals(springProperty("TERARIUM_MQ_ADDRESSES"), "terarium.mq-addresses");
  assertEquals(springProperty("TERARIUM_DURABLE_QUEUES"), "terarium.durable-queues");
  assertEquals(
    springProperty("TERARIUM_TASKRUNNER_REQUEST_TYPE"),
    "terarium.taskrunner.request-type",
  );
});

Deno.test("isSpellingOf() accepts what Spring's relaxed binding accepts, and only that", async (t) => {
  await t.step("accepted", () => {
    for (
      const [name, variable] of [
        ["TERARIUM_TASKRUNNER_REQUEST_TYPE", "TERARIUM_TASKRUNNER_REQUEST_TYPE"],
        ["TERARIUM_TASKRUNNER_REQUEST-TYPE", "TERARIUM_TASKRUNNER_REQUEST_TYPE"],
        ["TERARIUM_TASKRUNNER_REQUESTTYPE", "TERARIUM_TASKRUNNER_REQUEST_TYPE"],
        ["terarium.taskrunner.request-type", "TERARIUM_TASKRUNNER_REQUEST_TYPE"],
        ["terarium_taskrunner_requesttype", "TERARIUM_TASKRUNNER_REQUEST_TYPE"],
        ["TERARIUM_DURABLEQUEUES", "TERARIUM_DURABLE_QUEUES"],
        ["TERARIUM_DURABLE-QUEUES", "TERARIUM_DURABLE_QUEUES"],
        ["TERARIUM_MQ-ADDRESSES", "TERARIUM_MQ_ADDRESSES"],
        ["TERARIUM_MQ-PASSWORD", "TERARIUM_MQ_PASSWORD"],
        // Dashes are dropped wherever they are, a leading one too.
        ["-TERARIUM_MQPASSWORD", "TERARIUM_MQ_PASSWORD"],
        ["--terarium.mq-password", "TERARIUM_MQ_PASSWORD"],
      ]
    ) {
      assert(isSpellingOf(name!, variable!), `${name} is a spelling of ${variable}`);
    }
  });
  await t.step("rejected", () => {
    for (
      const [name, variable] of [
        ["TERARIUM_TASKRUNNERREQUESTTYPE", "TERARIUM_TASKRUNNER_REQUEST_TYPE"],
        ["TERARIUM_TASKRUNNER_REQUEST_QUEUE", "TERARIUM_TASKRUNNER_REQUEST_TYPE"],
        ["TERARIUM_TASKRUNNER_DURABLE_QUEUES", "TERARIUM_DURABLE_QUEUES"],
        ["TERARIUM_MQ_PASSWORD_FILE", "TERARIUM_MQ_PASSWORD"],
        ["XTERARIUM_MQ_PASSWORD", "TERARIUM_MQ_PASSWORD"],
        [".TERARIUM_MQ_PASSWORD", "TERARIUM_MQ_PASSWORD"],
        ["_TERARIUM_MQ_PASSWORD", "TERARIUM_MQ_PASSWORD"],
        ["-", "TERARIUM_MQ_PASSWORD"],
        ["", "TERARIUM_MQ_PASSWORD"],
      ]
    ) {
      assert(!isSpellingOf(name!, variable!), `${name} is not a spelling of ${variable}`);
    }
  });
});

Deno.test("resolveSettings() reads every spelling of a variable", async (t) => {
  const resolve = (env: Record<string, string>) =>
    resolveSettings(BROKER_SETTINGS, { options: {}, env });
  await t.step("Terarium's compose files: hyphens, and Spring's canonical form", () => {
    const config = resolve({
      "TERARIUM_TASKRUNNER_REQUEST-TYPE": "gollm",
      TERARIUM_DURABLEQUEUES: "true",
      "TERARIUM_MQ-USERNAME": "terarium",
    });
    assertEquals([config.requestType, config.durableQueues, config.username], [
      "gollm",
      true,
      "terarium",
    ]);
  });
  await t.step("two spellings with one value are one setting", () => {
    const config = resolve({
      TERARIUM_TASKRUNNER_REQUEST_TYPE: "mira",
      "TERARIUM_TASKRUNNER_REQUEST-TYPE": "mira",
    });
    assertEquals(config.requestType, "mira");
  });
  await t.step("an empty spelling is unset", () => {
    const config = resolve({ TERARIUM_DURABLE_QUEUES: "", TERARIUM_DURABLEQUEUES: "true" });
    assertEquals(config.durableQueues, true);
  });
  await t.step("two spellings that disagree are an error naming both", () => {
    const error = assertThrows(
      () =>
        resolve({
          TERARIUM_TASKRUNNER_REQUEST_TYPE: "gollm",
          TERARIUM_TASKRUNNER_REQUESTTYPE: "mira",
        }),
      ConfigError,
    );
    assertEquals(error.exitCode, 2);
    assertMatch(error.message, /TERARIUM_TASKRUNNER_REQUEST_TYPE="gollm"/);
    assertMatch(error.message, /TERARIUM_TASKRUNNER_REQUESTTYPE="mira"/);
    assertMatch(error.message, /terarium\.taskrunner\.request-type/);
  });
  await t.step("a password's values are never shown", () => {
    const error = assertThrows(
      () =>
        resolve({ TERARIUM_MQ_PASSWORD: "first-secret", "TERARIUM_MQ-PASSWORD": "second-secret" }),
      ConfigError,
    );
    assertNotIncludes(error.message, "first-secret");
    assertNotIncludes(error.message, "second-secret");
    assertMatch(error.message, /TERARIUM_MQ-PASSWORD/);
  });
  await t.step("a flag wins, whatever the spellings say", () => {
    const config = resolveSettings(BROKER_SETTINGS, {
      options: { requestType: "funman" },
      env: { TERARIUM_TASKRUNNER_REQUEST_TYPE: "gollm", TERARIUM_TASKRUNNER_REQUESTTYPE: "mira" },
    });
    assertEquals(config.requestType, "funman");
  });
  await t.step("an invalid value names the spelling it came from", () => {
    const error = assertThrows(
      () =>
        resolveSettings(RUNNER_SETTINGS, {
          options: {},
          env: { "TERARIUM_TASKRUNNER_REQUEST-CONCURRENCY": "many" },
        }),
      ConfigError,
    );
    assertMatch(error.message, /from TERARIUM_TASKRUNNER_REQUEST-CONCURRENCY/);
  });
  await t.step("engine settings too", () => {
    const config = resolveSettings(ENGINE_SETTINGS, {
      options: {},
      env: { "terarium.taskrunner.kill-grace-seconds": "3" },
    });
    assertEquals(config.killGraceSeconds, 3);
  });
});

Deno.test("findSpellings() puts the documented name first", () => {
  const found = findSpellings(
    { TERARIUM_DURABLEQUEUES: "true", TERARIUM_DURABLE_QUEUES: "true", OTHER: "x" },
    "TERARIUM_DURABLE_QUEUES",
  );
  assertEquals(found.map((spelling) => spelling.name), [
    "TERARIUM_DURABLE_QUEUES",
    "TERARIUM_DURABLEQUEUES",
  ]);
});

Deno.test("childEnvironment() keeps every spelling of the broker variables from tasks", () => {
  const env = childEnvironment({
    "TERARIUM_MQ-PASSWORD": "a",
    TERARIUM_MQPASSWORD: "b",
    "terarium.mq.password": "c",
    terarium_mq_username: "d",
    TERARIUM_TASKRUNNER_WORK_DIR: "/w",
    PATH: "/bin",
  });
  assertEquals(env, { TERARIUM_TASKRUNNER_WORK_DIR: "/w", PATH: "/bin" });
});
