import { Command } from "@commander-js/extra-typings";
import { CancellationWatcher } from "../broker/cancellation_watcher.ts";
import { BrokerConnection } from "../broker/connection.ts";
import { type ConnectionSettings, connectionSettings } from "../config/connection_settings.ts";
import { ResponsePublisher } from "../broker/publisher.ts";
import { RequestConsumer } from "../broker/request_consumer.ts";
import { declareTopology } from "../broker/topology.ts";
import {
  BROKER_SETTINGS,
  type BrokerConfig,
  ConfigError,
  ENGINE_SETTINGS,
  type EngineConfig,
  engineSettings,
  requestQueueName,
  resolveSettings,
  RUNNER_SETTINGS,
  type RunnerConfig,
} from "../config/settings.ts";
import {
  type HttpEndpoint,
  type Liveness,
  startHttpEndpoint,
} from "../observability/http_server.ts";
import type { Logger } from "../observability/log.ts";
import { RunnerMetrics } from "../observability/metrics.ts";
import { withHeldTasks } from "../observability/task_table.ts";
import { Runner } from "../runner/runner.ts";
import { makeNonDumpable } from "../os/prctl.ts";
import { isScriptAllowed, taskDirsRemoved } from "../task/mod.ts";
import { reapStaleTasks } from "../task/stale_tasks.ts";
import { whenAborted } from "../util/abort.ts";
import { errorMessage, settlesWithin } from "../util/async.ts";
import { onStopSignals } from "../util/stop_signals.ts";
import { VERSION } from "../version.ts";
import { type CommandContext, commandLogger } from "./context.ts";
import { BROKER_SECTION, CLIENT_QUEUES_SECTION, LOGGING_SECTION } from "./sections.ts";
import { addSettingOptions, pickSettings, section } from "./settings_options.ts";
import { effectiveSettings } from "./startup_line.ts";
import { prepareWorkDir } from "./work_dir.ts";

/** Everything `serve` needs. */
export interface ServeConfig {
  broker: BrokerConfig;
  engine: EngineConfig;
  runner: RunnerConfig;
}

/** What `serve` reports once it consumes. */
export interface ServeInfo {
  queue: string;
}

/** Options of {@linkcode serve}. */
export interface ServeOptions {
  logger: Logger;
  /** Stops serving when it aborts, as SIGTERM does; a second stop (a signal) skips the drain. */
  signal?: AbortSignal;
  /** Called each time the runner starts consuming. */
  onReady?: (info: ServeInfo) => void;
  /** The runner's environment, which tasks inherit less the broker settings. */
  env: Record<string, string | undefined>;
}

// After the drain, how long responses still queued may take to reach the broker.
const FINAL_PUBLISH_MS = 5_000;

/** The settings of `serve`, by heading of `serve --help`. */
export const SERVE_SECTIONS = [
  BROKER_SECTION,
  section(CLIENT_QUEUES_SECTION.heading, {
    ...CLIENT_QUEUES_SECTION.settings,
    ...pickSettings(RUNNER_SETTINGS, ["queueType", "deadLetterExchange"]),
  }),
  section("Tasks:", {
    ...pickSettings(RUNNER_SETTINGS, [
      "concurrency",
      "drainSeconds",
      "maxLostRuns",
      "responseHoldSeconds",
    ]),
    ...pickSettings(ENGINE_SETTINGS, [
      "workDir",
      "python",
      "pipeArgStyle",
      "killGraceSeconds",
      "maxTaskMinutes",
      "maxInputBytes",
      "maxOutputBytes",
      "maxProgressBytes",
      "logTailBytes",
    ]),
  }),
  section("Security:", pickSettings(ENGINE_SETTINGS, ["allowedScripts", "uid", "gid"])),
  section(
    "HTTP endpoint:",
    pickSettings(RUNNER_SETTINGS, ["httpPort", "httpHost", "maxDisconnectedSeconds"]),
  ),
  section(LOGGING_SECTION.heading, {
    ...LOGGING_SECTION.settings,
    ...pickSettings(RUNNER_SETTINGS, ["taskLogLinesPerSecond", "taskLogMaxBytes"]),
  }),
] as const;

const SERVE_EXAMPLES = `
Every setting can also come from its environment variable; a flag wins.

Examples:
  # Serve the gollm tasks of a local broker, any script allowed
  taskrunner serve --request-type gollm

  # As in a deployment: credentials from the environment, only the task's scripts,
  # health and metrics on port 8080
  TERARIUM_MQ_ADDRESSES=amqps://rabbitmq:5671 TERARIUM_MQ_PASSWORD_FILE=/run/secrets/mq \\
    taskrunner serve --request-type mira --allow-script '/opt/mira/**' --http-port 8080
`;

/** The `serve` command: its options, its help, and its action. */
export function serveCommand(context: CommandContext) {
  const command = new Command("serve")
    .description(
      "Consume task requests from RabbitMQ, run them, and publish their progress and results",
    )
    .addHelpText("after", SERVE_EXAMPLES)
    .exitOverride();
  return addSettingOptions(command, ...SERVE_SECTIONS).action(async (options) => {
    const sources = { options, env: context.env };
    await serve({
      broker: resolveSettings(BROKER_SETTINGS, sources),
      engine: resolveSettings(ENGINE_SETTINGS, sources),
      runner: resolveSettings(RUNNER_SETTINGS, sources),
    }, { logger: commandLogger(options, context), env: context.env });
  });
}

/**
 * Serves task requests from RabbitMQ until `signal` aborts (or SIGTERM/SIGINT arrives): then
 * stops consuming, drains running tasks, and returns. A second signal skips the drain.
 */
export async function serve(config: ServeConfig, options: ServeOptions): Promise<void> {
  const connection = connectionSettings(config.broker);
  const log = options.logger.redacting(connection.secrets);
  checkTaskUser(config.engine);
  prepareWorkDir(config.engine.workDir);
  // Once the settings are known to be usable: a wrong one exits with its error alone.
  log.info("Starting taskrunner", {
    version: VERSION,
    // One field per setting: the logger cuts each field at 1 KiB.
    ...effectiveSettings(config, {
      broker: BROKER_SETTINGS,
      engine: ENGINE_SETTINGS,
      runner: RUNNER_SETTINGS,
    }),
  });
  protectProcess(log);
  const reaped = await reapStaleTasks(config.engine.workDir);
  if (reaped > 0) log.warn("Cleaned up tasks left by a runner that died", { count: reaped });
  if (config.engine.allowedScripts.length === 0) {
    log.warn("No script allow-list: any executable on PATH or .py file may be run by a request");
  }

  await using stack = new AsyncDisposableStack();
  stack.defer(() => log.info("Stopped"));
  // Closed after the broker: /readyz answers "shutting down" until everything has stopped.
  const last = stack.use(new AsyncDisposableStack());
  const service = openService(config, {
    log,
    stack,
    connection,
    env: options.env,
    ...(options.onReady ? { onReady: options.onReady } : {}),
  });
  const stopping = new AbortController();
  const forced = new AbortController();
  if (service.metrics) {
    last.use(startProbes(service, service.metrics, { config: config.runner, log, stopping }));
  }
  stack.use(onStopSignals({
    first: () => {
      log.info("Shutting down: no new requests");
      stopping.abort();
    },
    again: () => {
      log.warn("Second signal: stopping running tasks now");
      forced.abort();
    },
    copy: (signal) => log.debug("Ignored a copy of the last signal", { signal }),
  }, { signal: options.signal }));

  service.broker.start();
  using stopped = whenAborted(stopping.signal);
  await stopped.promise;
  await service.consumer.pause();
  await service.runner.drain(config.runner.drainSeconds * 1000, { force: forced.signal });
  // Responses on their way get a last chance; held ones (no queue for them, or refused) are
  // dropped by the close, which says so: they would keep the runner up for nothing.
  await settlesWithin(service.publisher.idle({ held: false }), FINAL_PUBLISH_MS);
  await taskDirsRemoved();
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

// The parts of a serving runner, from the connection to the consumer.
interface Service {
  broker: BrokerConnection;
  publisher: ResponsePublisher;
  runner: Runner;
  consumer: RequestConsumer;
  metrics: RunnerMetrics | undefined;
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
      error: errorMessage(error),
    });
  }
}

/**
 * Builds the runner's parts; each is adopted by `stack`, which closes them in the reverse
 * order: the consumer first, the connection last. Nothing connects before `broker.start()`.
 */
function openService(
  config: ServeConfig,
  options: {
    log: Logger;
    stack: AsyncDisposableStack;
    connection: ConnectionSettings;
    env: Record<string, string | undefined>;
    onReady?: (info: ServeInfo) => void;
  },
): Service {
  const { log, stack, connection } = options;
  const queue = requestQueueName(config.broker);
  const broker = stack.use(openBroker(config, { queue, connection, log }));
  const allowed = config.engine.allowedScripts;
  const metrics = config.runner.httpPort > 0
    ? new RunnerMetrics({
      scriptAllowed: (script) => allowed.length === 0 || isScriptAllowed(script, allowed),
    })
    : undefined;
  const publisher = stack.use(
    new ResponsePublisher(broker, {
      exchange: config.broker.responseExchange,
      logger: log,
      holdMs: config.runner.responseHoldSeconds * 1000,
      ...(metrics ? { observer: metrics } : {}),
    }),
  );
  const cancellations = stack.use(
    new CancellationWatcher(broker, {
      exchange: config.broker.cancellationExchange,
      durable: config.broker.durableQueues,
      logger: log,
      channels: config.runner.concurrency,
    }),
  );
  const runner = new Runner({
    publisher,
    cancellations,
    engine: engineSettings(config.engine, options.env),
    maxLostRuns: config.runner.maxLostRuns,
    taskLog: {
      linesPerSecond: config.runner.taskLogLinesPerSecond,
      maxBytes: config.runner.taskLogMaxBytes,
    },
    logger: log,
    ...(metrics ? { observer: metrics } : {}),
  });
  const consumer = stack.use(
    new RequestConsumer(broker, {
      queue,
      prefetch: config.runner.concurrency,
      logger: log,
      onDelivery: (delivery) => runner.handle(delivery),
      onConsuming: (consuming) => {
        if (!consuming) return;
        log.info("Consuming requests", { queue, concurrency: config.runner.concurrency });
        options.onReady?.({ queue });
      },
    }),
  );
  return { broker, publisher, runner, consumer, metrics };
}

/** The broker connection, which declares the topology each time it connects. */
function openBroker(
  config: ServeConfig,
  options: { queue: string; connection: ConnectionSettings; log: Logger },
): BrokerConnection {
  const { log, connection } = options;
  return new BrokerConnection(
    connection.endpoints,
    {
      logger: log,
      connectTimeoutMs: connection.connectTimeoutMs,
      ...(connection.ca ? { ca: connection.ca } : {}),
      connectionName: `taskrunner ${VERSION} ${config.broker.requestType}`,
      // Declared on every connection: after a broker restart, non-durable objects are gone.
      prepare: (model) =>
        declareTopology(model, {
          requestQueue: options.queue,
          responseExchange: config.broker.responseExchange,
          cancellationExchange: config.broker.cancellationExchange,
          durable: config.broker.durableQueues,
          deadLetterExchange: config.runner.deadLetterExchange,
          queueType: config.runner.queueType,
        }, log),
    },
  );
}

/** Binds the metrics to the service and serves /healthz, /readyz and /metrics. */
function startProbes(
  service: Service,
  metrics: RunnerMetrics,
  options: { config: RunnerConfig; log: Logger; stopping: AbortController },
): HttpEndpoint {
  const { broker, consumer, publisher, runner } = service;
  const { config } = options;
  const maxDisconnectedMs = config.maxDisconnectedSeconds * 1000;
  metrics.bind({
    running: () => runner.tasks.runningCount,
    concurrencyLimit: () => config.concurrency,
    reconnects: () => broker.reconnects,
    connected: () => broker.current !== undefined,
    consuming: () => consumer.consuming,
    pendingResponses: () => publisher.pending,
  });
  return startHttpEndpoint({
    liveness: () => brokerLiveness(broker.disconnectedForMs, maxDisconnectedMs),
    readiness: () => {
      if (options.stopping.signal.aborted) return { ready: false, reason: "shutting down" };
      if (!broker.current) return { ready: false, reason: "not connected to the broker" };
      if (!consumer.consuming) return { ready: false, reason: "not consuming the request queue" };
      const publishing = publisher.problem;
      if (publishing) return { ready: false, reason: publishing };
      return { ready: true };
    },
    metrics: () => metrics.text(),
    metricsContentType: metrics.contentType,
    tasks: withHeldTasks(runner.tasks, () => publisher.held()),
  }, { port: config.httpPort, hostname: config.httpHost, logger: options.log });
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
