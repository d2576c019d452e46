import { CancellationWatcher } from "../broker/cancellation_watcher.ts";
import { BrokerConnection } from "../broker/connection.ts";
import { connectionSettings } from "../broker/connection_settings.ts";
import { ResponsePublisher } from "../broker/publisher.ts";
import { RequestConsumer } from "../broker/request_consumer.ts";
import { declareTopology } from "../broker/topology.ts";
import {
  type BrokerConfig,
  childEnvironment,
  ConfigError,
  type EngineConfig,
  requestQueueName,
  type RunnerConfig,
} from "../config.ts";
import {
  type HttpEndpoint,
  type Liveness,
  startHttpEndpoint,
} from "../observability/http_server.ts";
import type { Logger } from "../observability/log.ts";
import { RunnerMetrics } from "../observability/metrics.ts";
import { Runner } from "../runner.ts";
import { makeNonDumpable } from "../security/prctl.ts";
import { reapStaleTasks } from "../task/stale_tasks.ts";
import type { TaskEngineSettings } from "../task/mod.ts";
import { settlesWithin } from "../util/async.ts";
import { VERSION } from "../version.ts";

/** Everything `serve` needs. */
export interface ServeConfig {
  broker: BrokerConfig;
  engine: EngineConfig;
  runner: RunnerConfig;
}

// After the drain, how long responses still queued may take to reach the broker.
const FINAL_PUBLISH_MS = 5_000;

/** The engine settings of a runner, from its configuration. */
export function engineSettings(config: EngineConfig): TaskEngineSettings {
  return {
    workDir: config.workDir,
    python: config.python,
    pipeArgStyle: config.pipeArgStyle,
    killGraceMs: config.killGraceSeconds * 1000,
    logTailBytes: config.logTailBytes,
    maxOutputBytes: config.maxOutputBytes,
    allowedScripts: config.allowedScripts,
    env: childEnvironment(Deno.env.toObject()),
    dieWithRunner: true,
    ...(config.uid !== undefined ? { uid: config.uid } : {}),
    ...(config.gid !== undefined ? { gid: config.gid } : {}),
  };
}

/** Rejects a task user that cannot work: half given, or asked of a runner that is not root. */
function checkTaskUser(config: EngineConfig): void {
  if (config.uid === undefined && config.gid === undefined) return;
  if (config.uid === undefined || config.gid === undefined) {
    throw new ConfigError("Invalid settings --uid and --gid: give both or neither");
  }
  if (Deno.uid() !== 0) {
    throw new ConfigError(
      `Invalid settings --uid and --gid: running tasks as ${config.uid}:${config.gid} needs the runner to run as root`,
    );
  }
}

/**
 * Makes the runner non-dumpable, so that tasks running as its user cannot read the broker
 * password from its `/proc/<pid>/environ` or memory. `--uid` is the real isolation.
 */
function protectProcess(log: Logger): void {
  try {
    makeNonDumpable();
  } catch (error) {
    log.warn("Cannot make the runner non-dumpable: tasks of its user may read its environment", {
      error: error instanceof Error ? error.message : String(error),
    });
  }
}

/**
 * Serves task requests from RabbitMQ until `signal` aborts (or SIGTERM/SIGINT arrives): then
 * stops consuming, drains running tasks, and returns. A second signal skips the drain.
 */
export async function serve(
  config: ServeConfig,
  options: { logger: Logger; signal?: AbortSignal; onReady?: (info: ServeInfo) => void },
): Promise<void> {
  const connection = connectionSettings(config.broker);
  const log = options.logger.redacting(connection.secrets);
  checkTaskUser(config.engine);
  protectProcess(log);
  const queue = requestQueueName(config.broker);
  const reaped = await reapStaleTasks(config.engine.workDir);
  if (reaped > 0) log.warn("Cleaned up tasks left by a runner that died", { count: reaped });
  if (config.engine.allowedScripts.length === 0) {
    log.warn("No script allow-list: any executable on PATH or .py file may be run by a request");
  }
  const broker = new BrokerConnection(
    connection.endpoints,
    {
      logger: log,
      connectTimeoutMs: connection.connectTimeoutMs,
      ...(connection.ca ? { ca: connection.ca } : {}),
      connectionName: `taskrunner ${VERSION} ${config.broker.requestType}`,
      // Declared on every connection: after a broker restart, non-durable objects are gone.
      prepare: (model) =>
        declareTopology(model, {
          requestQueue: queue,
          responseExchange: config.broker.responseExchange,
          cancellationExchange: config.broker.cancellationExchange,
          durable: config.broker.durableQueues,
          deadLetterExchange: config.runner.deadLetterExchange,
          queueType: config.runner.queueType,
        }, log),
    },
  );
  const metrics = config.runner.httpPort > 0 ? new RunnerMetrics() : undefined;
  const publisher = new ResponsePublisher(broker, {
    exchange: config.broker.responseExchange,
    durable: config.broker.durableQueues,
    logger: log,
    ...(metrics ? { observer: metrics } : {}),
  });
  const cancellations = new CancellationWatcher(broker, {
    exchange: config.broker.cancellationExchange,
    durable: config.broker.durableQueues,
    logger: log,
  });
  const runner = new Runner({
    publisher,
    cancellations,
    engine: engineSettings(config.engine),
    maxInputBytes: config.engine.maxInputBytes,
    logger: log,
    ...(metrics ? { observer: metrics } : {}),
  });
  const consumer = new RequestConsumer(broker, {
    queue,
    prefetch: config.runner.concurrency,
    logger: log,
    onDelivery: (delivery) => runner.handle(delivery),
    onConsuming: (consuming) => {
      if (consuming) {
        log.info("Consuming requests", { queue, concurrency: config.runner.concurrency });
        options.onReady?.({ queue });
      }
    },
  });

  const stopping = new AbortController();
  const forced = new AbortController();
  metrics?.bind({
    running: () => runner.activeCount,
    reconnects: () => broker.reconnects,
    connected: () => broker.current !== undefined,
    consuming: () => consumer.consuming,
    pendingResponses: () => publisher.pending,
  });
  let http: HttpEndpoint | undefined;
  if (metrics) {
    const maxDisconnectedMs = config.runner.maxDisconnectedSeconds * 1000;
    http = startHttpEndpoint({
      liveness: () => brokerLiveness(broker.disconnectedForMs, maxDisconnectedMs),
      readiness: () => {
        if (stopping.signal.aborted) return { ready: false, reason: "shutting down" };
        if (!broker.current) return { ready: false, reason: "not connected to the broker" };
        if (!consumer.consuming) {
          return { ready: false, reason: "not consuming the request queue" };
        }
        return { ready: true };
      },
      metrics: () => metrics.text(),
      metricsContentType: metrics.contentType,
    }, { port: config.runner.httpPort, hostname: config.runner.httpHost, logger: log });
  }
  const onSignal = () => {
    if (stopping.signal.aborted) {
      log.warn("Second signal: stopping running tasks now");
      forced.abort();
    } else {
      log.info("Shutting down: no new requests");
      stopping.abort();
    }
  };
  const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
  for (const name of signals) Deno.addSignalListener(name, onSignal);
  options.signal?.addEventListener("abort", onSignal, { once: true });
  if (options.signal?.aborted) onSignal();

  try {
    broker.start();
    await new Promise<void>((resolve) => {
      if (stopping.signal.aborted) resolve();
      stopping.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    await consumer.pause();
    await runner.drain(config.runner.drainSeconds * 1000, { force: forced.signal });
    await settlesWithin(publisher.idle(), FINAL_PUBLISH_MS);
  } finally {
    for (const name of signals) Deno.removeSignalListener(name, onSignal);
    await consumer.close();
    await cancellations.close();
    await publisher.close();
    await broker.close();
    await http?.close();
    log.info("Stopped");
  }
}

/**
 * Dead once the broker has been unreachable longer than `maxMs` (0: never), so that the
 * orchestrator restarts a runner whose network or connection is stuck.
 */
export function brokerLiveness(disconnectedMs: number, maxMs: number): Liveness {
  if (maxMs <= 0 || disconnectedMs <= maxMs) return { alive: true };
  return {
    alive: false,
    reason: `not connected to the broker for ${Math.round(disconnectedMs / 1000)} s (limit ${
      maxMs / 1000
    } s)`,
  };
}

/** What `serve` reports once it consumes. */
export interface ServeInfo {
  queue: string;
}
