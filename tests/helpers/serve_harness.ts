import { serve, type ServeConfig } from "../../src/commands/serve.ts";
import {
  BROKER_SETTINGS,
  ENGINE_SETTINGS,
  resolveSettings,
  RUNNER_SETTINGS,
} from "../../src/config/settings.ts";
import { Logger, type LogLevel } from "../../src/observability/log.ts";
import { AMQP_URL, type TestNames } from "./broker_harness.ts";
import { TEST_PYTHON } from "./engine.ts";

/** Absolute path of a fixture task. */
export function fixture(name: string): string {
  return new URL(`../fixtures/${name}`, import.meta.url).pathname;
}

/** A runner served in this process for a test, stopped on dispose. */
export interface TestRunner extends AsyncDisposable {
  /** Resolves once it consumes. */
  ready: Promise<void>;
  /** Stops it (like SIGTERM) and waits until it has stopped. */
  stop(): Promise<void>;
  /** Log lines written so far. */
  logs: string[];
}

/**
 * Starts `serve` in-process on the test's names; `options` are raw settings by key, as a
 * flag would give them.
 */
export function startRunner(names: TestNames, options: Record<string, unknown> = {}): TestRunner {
  const url = new URL(AMQP_URL);
  const sources = {
    options: {
      amqpUrl: `${url.protocol}//${url.host}`,
      heartbeat: "2",
      mqUsername: decodeURIComponent(url.username),
      mqPassword: decodeURIComponent(url.password),
      requestType: names.requestType,
      requestQueue: names.requestQueue,
      responseExchange: names.responseExchange,
      cancellationExchange: names.cancellationExchange,
      killGrace: "2",
      drain: "5",
      python: TEST_PYTHON,
      ...options,
    },
    env: {},
  };
  const config: ServeConfig = {
    broker: resolveSettings(BROKER_SETTINGS, sources),
    engine: resolveSettings(ENGINE_SETTINGS, sources),
    runner: resolveSettings(RUNNER_SETTINGS, sources),
  };
  const logs: string[] = [];
  const level = (Deno.env.get("TEST_LOG_LEVEL") ?? "error") as LogLevel;
  const logger = new Logger({
    level: "debug",
    sink: (line) => {
      logs.push(line);
      const shown = line.split(" ")[1]?.toLowerCase() ?? "";
      if (
        ["debug", "info", "warn", "error"].indexOf(shown) >=
          ["debug", "info", "warn", "error"].indexOf(level)
      ) {
        Deno.stderr.writeSync(new TextEncoder().encode(line));
      }
    },
  });
  const controller = new AbortController();
  let markReady: () => void;
  const ready = new Promise<void>((resolve) => markReady = resolve);
  const done = serve(config, {
    logger,
    signal: controller.signal,
    onReady: () => markReady(),
    env: Deno.env.toObject(),
  });
  const stop = async () => {
    controller.abort();
    await done;
  };
  return { ready, stop, logs, [Symbol.asyncDispose]: stop };
}
