import { z } from "zod";
import { maskUsername, parseBrokerAddresses, redactBrokerAddresses } from "./amqp_url.ts";
import { LOG_LEVELS } from "../observability/log.ts";
import {
  findSpellings,
  type FoundVariable,
  isBrokerVariable,
  springProperty,
} from "./relaxed_env.ts";
import type { TaskEngineSettings } from "../task/mod.ts";

/** A setting with a wrong value: the program stops with exit code 2 and this message. */
export class ConfigError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Largest message RabbitMQ accepts by default (`max_message_size`). */
export const BROKER_MAX_MESSAGE_BYTES = 128 * 1024 * 1024;
// Room in a response for JSON fields and the stdout/stderr tails around the base64 output.
const RESPONSE_OVERHEAD_BYTES = 8 * 1024 * 1024;
/** Default output limit: what still fits a response once base64 has grown it by 4/3. */
export const DEFAULT_MAX_OUTPUT_BYTES = Math.floor(
  (BROKER_MAX_MESSAGE_BYTES - RESPONSE_OVERHEAD_BYTES) / 4,
) * 3;
/** Default input limit: what fits a request message once base64-encoded. */
export const DEFAULT_MAX_INPUT_BYTES = DEFAULT_MAX_OUTPUT_BYTES;

/**
 * Where task FIFO directories go by default. Not `/dev/shm`, though tmpfs is cheaper: Deno
 * allows paths under `/dev` only to a program run with `--allow-all`, which the runner is not.
 */
export const DEFAULT_WORK_DIR = "/tmp/taskrunner";

const positiveInt = z.coerce.number().int().positive();
const nonNegativeNumber = z.coerce.number().nonnegative().finite();
const bool = z.union([z.boolean(), z.string()]).transform((value, ctx) => {
  if (typeof value === "boolean") return value;
  const text = value.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(text)) return true;
  if (["false", "0", "no", "off", ""].includes(text)) return false;
  ctx.addIssue({ code: "custom", message: "must be true or false" });
  return z.NEVER;
});
const list = z.union([z.array(z.string()), z.string()]).transform((value) =>
  (typeof value === "string" ? value.split(",") : value).map((item) => item.trim()).filter((
    item,
  ) => item.length > 0)
);
// A user or group id; an empty value means unset (and never root by accident).
const optionalId = z.preprocess(
  (value) => value === "" ? undefined : value,
  z.coerce.number().int().min(0).max(4_294_967_294).optional(),
);
// A list of addresses as Spring reads `spring.rabbitmq.addresses`; the error never shows a
// password (resolveSettings shows the value through the setting's `redact`).
const amqpAddresses = z.string().superRefine((value, ctx) => {
  try {
    parseBrokerAddresses(value);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: error instanceof Error ? error.message : "invalid" });
  }
});
const optionalPath = z.preprocess(
  (value) => value === "" ? undefined : value,
  z.string().min(1).optional(),
);

/** One setting: its flag, its environment variable, its schema and its default. */
export interface SettingSpec {
  flag: string;
  env: string;
  description: string;
  schema: z.ZodType;
  default?: unknown;
  /** Never shown: not in `--help`, not in errors, not in logs. */
  secret?: boolean;
  /** Can be given more than once. */
  repeatable?: boolean;
  /** Hides what must not be shown of a wrong value in an error (e.g. credentials in a URL). */
  redact?: (text: string) => string;
}

// Keeps each schema's own type, so that resolved settings are typed, and the flag's literal
// text, from which the command line infers the type of the option's raw value.
function setting<const S extends SettingSpec>(spec: S): S {
  return spec;
}

/** Broker settings, shared by `serve`, `submit` and `cancel`. */
export const BROKER_SETTINGS = {
  amqpUrl: setting({
    flag: "--amqp-url <url>",
    env: "TERARIUM_MQ_ADDRESSES",
    description:
      "broker addresses, tried in order: amqp[s]://[user:password@]host[:port][/vhost] or host[:port], comma-separated",
    schema: amqpAddresses,
    default: "amqp://localhost:5672",
    redact: redactBrokerAddresses,
  }),
  username: setting({
    flag: "--mq-username <name>",
    env: "TERARIUM_MQ_USERNAME",
    description: "broker user",
    schema: z.string(),
    default: "guest",
    // Masked alike wherever it is shown: the start-up line, configuration errors.
    redact: maskUsername,
  }),
  password: setting({
    flag: "--mq-password <password>",
    env: "TERARIUM_MQ_PASSWORD",
    description: "broker password (prefer the environment variable)",
    schema: z.string().optional(),
    secret: true,
  }),
  passwordFile: setting({
    flag: "--mq-password-file <path>",
    env: "TERARIUM_MQ_PASSWORD_FILE",
    description: "file holding the broker password (a mounted secret; a final newline is dropped)",
    schema: optionalPath,
  }),
  caFile: setting({
    flag: "--mq-ca-file <path>",
    env: "TERARIUM_MQ_CA_FILE",
    description: "PEM certificates trusted for amqps:// instead of the default roots",
    schema: optionalPath,
  }),
  connectTimeoutSeconds: setting({
    flag: "--connect-timeout <seconds>",
    env: "TERARIUM_MQ_CONNECT_TIMEOUT_SECONDS",
    description: "limit of one connection attempt to one address (socket and AMQP handshake)",
    schema: z.coerce.number().positive().max(3600),
    default: 20,
  }),
  requestType: setting({
    flag: "--request-type <type>",
    env: "TERARIUM_TASKRUNNER_REQUEST_TYPE",
    description: "task family served: gollm, mira, funman, ...",
    schema: z.string().min(1),
    default: "terarium",
  }),
  requestQueue: setting({
    flag: "--request-queue <name>",
    env: "TERARIUM_TASKRUNNER_REQUEST_QUEUE",
    description: "base name of the request queue (the type is appended)",
    schema: z.string().min(1),
    default: "terarium-request-queue",
  }),
  responseExchange: setting({
    flag: "--response-exchange <name>",
    env: "TERARIUM_TASKRUNNER_RESPONSE_EXCHANGE",
    description: "exchange responses are published to",
    schema: z.string().min(1),
    default: "terarium-response-exchange",
  }),
  cancellationExchange: setting({
    flag: "--cancellation-exchange <name>",
    env: "TERARIUM_TASKRUNNER_CANCELLATION_EXCHANGE",
    description: "exchange cancellations arrive on",
    schema: z.string().min(1),
    default: "terarium-cancellation-exchange",
  }),
  heartbeatSeconds: setting({
    flag: "--heartbeat <seconds>",
    env: "TERARIUM_MQ_HEARTBEAT_SECONDS",
    description: "AMQP heartbeat: a silent network is detected after about twice this; 0 = off",
    schema: z.coerce.number().int().min(0).max(3600),
    default: 30,
  }),
  durableQueues: setting({
    flag: "--durable-queues [bool]",
    env: "TERARIUM_DURABLE_QUEUES",
    description:
      "declare the request queue, cancellation exchange and queues durable (the server's terarium.durableQueues)",
    schema: bool,
    default: false,
  }),
};

/** Settings of the task engine, shared by `serve` and `run`. */
export const ENGINE_SETTINGS = {
  workDir: setting({
    flag: "--work-dir <dir>",
    env: "TERARIUM_TASKRUNNER_WORK_DIR",
    description: "where per-task FIFO directories are made",
    schema: z.string().min(1),
    default: DEFAULT_WORK_DIR,
  }),
  python: setting({
    flag: "--python <path>",
    env: "TERARIUM_TASKRUNNER_PYTHON",
    description: "interpreter for .py scripts",
    schema: z.string().min(1),
    default: "python3",
  }),
  pipeArgStyle: setting({
    flag: "--pipe-args <style>",
    env: "TERARIUM_TASKRUNNER_PIPE_ARGS",
    description:
      "spelling of the pipe arguments: underscore (--input_pipe) or hyphen (--input-pipe)",
    schema: z.enum(["underscore", "hyphen"]),
    default: "underscore",
  }),
  killGraceSeconds: setting({
    flag: "--kill-grace <seconds>",
    env: "TERARIUM_TASKRUNNER_KILL_GRACE_SECONDS",
    description: "time between SIGTERM and SIGKILL on cancel and timeout",
    schema: nonNegativeNumber,
    default: 10,
  }),
  logTailBytes: setting({
    flag: "--log-tail-bytes <bytes>",
    env: "TERARIUM_TASKRUNNER_LOG_TAIL_BYTES",
    description: "stdout and stderr kept per task (each) and sent in responses",
    schema: positiveInt,
    default: 1024 * 1024,
  }),
  maxInputBytes: setting({
    flag: "--max-input-bytes <bytes>",
    env: "TERARIUM_TASKRUNNER_MAX_INPUT_BYTES",
    description: "largest task input accepted",
    schema: positiveInt,
    default: DEFAULT_MAX_INPUT_BYTES,
  }),
  maxOutputBytes: setting({
    flag: "--max-output-bytes <bytes>",
    env: "TERARIUM_TASKRUNNER_MAX_OUTPUT_BYTES",
    description: "largest task output accepted (must fit a broker message once base64-encoded)",
    schema: positiveInt,
    default: DEFAULT_MAX_OUTPUT_BYTES,
  }),
  maxTaskMinutes: setting({
    flag: "--max-task-duration <minutes>",
    env: "TERARIUM_TASKRUNNER_MAX_TASK_MINUTES",
    description:
      "cap on a task's whole run, however much progress it reports, in minutes; 0 = none (timeoutMinutes is an inactivity limit)",
    schema: nonNegativeNumber,
    default: 0,
  }),
  maxProgressBytes: setting({
    flag: "--max-progress-bytes <bytes>",
    env: "TERARIUM_TASKRUNNER_MAX_PROGRESS_BYTES",
    description: "largest progress message forwarded; a larger one is dropped with a warning",
    schema: positiveInt,
    default: 1024 * 1024,
  }),
  allowedScripts: setting({
    flag: "--allow-script <pattern>",
    env: "TERARIUM_TASKRUNNER_ALLOWED_SCRIPTS",
    description:
      "script allowed to run (repeatable; a glob: * within a path segment, ** across); unset allows any",
    // A `..` in a pattern would be matched against real paths, which never have one.
    schema: list.refine(
      (patterns) => !patterns.some((pattern) => pattern.split("/").includes("..")),
      'a pattern must not have a ".." segment',
    ),
    default: [],
    repeatable: true,
  }),
  uid: setting({
    flag: "--uid <uid>",
    env: "TERARIUM_TASKRUNNER_UID",
    description: "run tasks as this user id (the runner must run as root; needs --gid)",
    schema: optionalId,
  }),
  gid: setting({
    flag: "--gid <gid>",
    env: "TERARIUM_TASKRUNNER_GID",
    description: "run tasks with this group id (with --uid)",
    schema: optionalId,
  }),
};

/** Settings of the broker-facing runner (`serve`). */
export const RUNNER_SETTINGS = {
  concurrency: setting({
    flag: "--concurrency <n>",
    env: "TERARIUM_TASKRUNNER_REQUEST_CONCURRENCY",
    description: "tasks run at once (also the prefetch count)",
    schema: positiveInt.max(65535),
    default: 32,
  }),
  drainSeconds: setting({
    flag: "--drain <seconds>",
    env: "TERARIUM_TASKRUNNER_DRAIN_SECONDS",
    description: "on SIGTERM, time running tasks get to finish before they are requeued",
    schema: nonNegativeNumber,
    default: 30,
  }),
  deadLetterExchange: setting({
    flag: "--dead-letter-exchange <name>",
    env: "TERARIUM_TASKRUNNER_DEAD_LETTER_EXCHANGE",
    description:
      "declare this dead-letter exchange and a queue for it; a broker policy attaches it to the request queue",
    schema: z.string(),
    default: "",
  }),
  queueType: setting({
    flag: "--queue-type <type>",
    env: "TERARIUM_TASKRUNNER_QUEUE_TYPE",
    description:
      "request queue type: classic, or quorum (declared only when missing; the server must declare it the same way)",
    schema: z.enum(["classic", "quorum"]),
    default: "classic",
  }),
  responseHoldSeconds: setting({
    flag: "--response-hold <seconds>",
    env: "TERARIUM_TASKRUNNER_RESPONSE_HOLD_SECONDS",
    description:
      "how long a response the broker does not deliver (no queue bound, refused) is kept and retried before it is given up",
    schema: z.coerce.number().positive().max(86_400),
    default: 300,
  }),
  maxLostRuns: setting({
    flag: "--max-lost-runs <n>",
    env: "TERARIUM_TASKRUNNER_MAX_LOST_RUNS",
    description:
      "a request whose runner was lost this many times while running it gets FAILED; 0 = never",
    schema: z.coerce.number().int().min(0).max(1000),
    default: 3,
  }),
  taskLogLinesPerSecond: setting({
    flag: "--task-log-rate <lines>",
    env: "TERARIUM_TASKRUNNER_TASK_LOG_RATE",
    description: "lines of one task's stdout/stderr logged per second; the rest is counted",
    schema: positiveInt,
    default: 100,
  }),
  taskLogMaxBytes: setting({
    flag: "--task-log-max-bytes <bytes>",
    env: "TERARIUM_TASKRUNNER_TASK_LOG_MAX_BYTES",
    description: "task stdout/stderr logged per task in all; the rest is counted",
    schema: positiveInt,
    default: 1024 * 1024,
  }),
  httpPort: setting({
    flag: "--http-port <port>",
    env: "TERARIUM_TASKRUNNER_HTTP_PORT",
    description: "port of /healthz, /readyz, /metrics and /tasks; 0 = off",
    schema: z.coerce.number().int().min(0).max(65535),
    default: 0,
  }),
  maxDisconnectedSeconds: setting({
    flag: "--max-disconnected <seconds>",
    env: "TERARIUM_TASKRUNNER_MAX_DISCONNECTED_SECONDS",
    description: "/healthz answers 503 once the broker is unreachable this long; 0 = never",
    schema: nonNegativeNumber,
    default: 300,
  }),
  httpHost: setting({
    flag: "--http-host <host>",
    env: "TERARIUM_TASKRUNNER_HTTP_HOST",
    description: "address the HTTP endpoint listens on",
    schema: z.string().min(1),
    default: "0.0.0.0",
  }),
};

/** Logging settings, shared by every command. */
export const LOG_SETTINGS = {
  logLevel: setting({
    flag: "--log-level <level>",
    env: "TERARIUM_TASKRUNNER_LOG_LEVEL",
    description: "debug, info, warn or error",
    schema: z.enum(LOG_LEVELS),
    default: "info",
  }),
  logFormat: setting({
    flag: "--log-format <format>",
    env: "TERARIUM_TASKRUNNER_LOG_FORMAT",
    description: "text or json (one object per line)",
    schema: z.enum(["text", "json"]),
    default: "text",
  }),
};

/** A group of settings by key. */
export type SettingGroup = Record<string, SettingSpec>;

/** The resolved, typed values of a settings group. */
export type SettingValues<G extends SettingGroup> = {
  [K in keyof G]: z.output<G[K]["schema"]>;
};

/** Commander's option key for a flag: `--amqp-url <url>` becomes `amqpUrl`. */
export function optionKey(flag: string): string {
  const name = flag.split(/[ ,]/)[0]!.replace(/^--/, "");
  return name.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

/**
 * Resolves a settings group: a flag wins over the environment variable (in any spelling
 * Spring's relaxed binding accepts), which wins over the default; every value is validated.
 *
 * @param group the settings to resolve
 * @param sources parsed command-line options (by commander key) and the environment
 * @throws {ConfigError} naming the setting, its flag and variable, when a value is wrong
 */
export function resolveSettings<G extends SettingGroup>(
  group: G,
  sources: { options: Record<string, unknown>; env: Record<string, string | undefined> },
): SettingValues<G> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(group)) {
    const fromFlag = sources.options[optionKey(spec.flag)];
    const flagGiven = fromFlag !== undefined &&
      !(Array.isArray(fromFlag) && fromFlag.length === 0);
    const found = flagGiven ? undefined : fromEnvironment(spec, sources.env);
    const fromEnv = found?.value;
    const raw = flagGiven ? fromFlag : fromEnv !== undefined ? fromEnv : spec.default;
    const parsed = spec.schema.safeParse(raw);
    if (!parsed.success) {
      const source = flagGiven
        ? spec.flag.split(" ")[0]
        : found !== undefined
        ? found.name
        : "default";
      const text = typeof raw === "string" && spec.redact ? spec.redact(raw) : raw;
      const shown = spec.secret ? "" : ` ${JSON.stringify(text)}`;
      const reason = parsed.error.issues.map((issue) => issue.message).join("; ");
      throw new ConfigError(
        `Invalid setting ${
          spec.flag.split(" ")[0]
        } (${spec.env}) from ${source}:${shown} ${reason}`,
      );
    }
    out[key] = parsed.data;
  }
  return out as SettingValues<G>;
}

/**
 * The setting's variable under any spelling Spring's relaxed binding accepts; an empty one
 * (`VAR=` in a compose file) means unset, not zero or an empty name.
 *
 * @throws {ConfigError} when two spellings are set to different values: which one Spring
 * would take depends on its lookup order, so the operator is asked to remove one
 */
function fromEnvironment(
  spec: SettingSpec,
  env: Record<string, string | undefined>,
): FoundVariable | undefined {
  const found = findSpellings(env, spec.env);
  const other = found.find((spelling) => spelling.value !== found[0]!.value);
  if (other) {
    const show = (spelling: FoundVariable) =>
      spec.secret
        ? spelling.name
        : `${spelling.name}=${JSON.stringify(spec.redact?.(spelling.value) ?? spelling.value)}`;
    throw new ConfigError(
      `Conflicting settings ${show(found[0]!)} and ${show(other)}: both set ${
        springProperty(spec.env)
      } (${spec.flag.split(" ")[0]}); remove one`,
    );
  }
  return found[0];
}

/** Broker settings, resolved. */
export type BrokerConfig = SettingValues<typeof BROKER_SETTINGS>;
/** Engine settings, resolved. */
export type EngineConfig = SettingValues<typeof ENGINE_SETTINGS>;
/** Runner settings, resolved. */
export type RunnerConfig = SettingValues<typeof RUNNER_SETTINGS>;

/** The request queue's full name: `<base>-<type>`, e.g. `terarium-request-queue-gollm`. */
export function requestQueueName(
  config: Pick<BrokerConfig, "requestQueue" | "requestType">,
): string {
  return `${config.requestQueue}-${config.requestType}`;
}

/**
 * The task's environment: the runner's own, less the broker settings and credentials (every
 * spelling of `TERARIUM_MQ_*`), which a task has no business reading.
 */
export function childEnvironment(
  env: Record<string, string | undefined>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && !isBrokerVariable(key)) out[key] = value;
  }
  return out;
}

/**
 * The task engine's settings, from the engine configuration and the runner's environment
 * (which tasks inherit, less the broker settings).
 *
 * @param config the resolved engine settings
 * @param env the runner's environment
 */
export function engineSettings(
  config: EngineConfig,
  env: Record<string, string | undefined>,
): TaskEngineSettings {
  return {
    workDir: config.workDir,
    python: config.python,
    pipeArgStyle: config.pipeArgStyle,
    killGraceMs: config.killGraceSeconds * 1000,
    logTailBytes: config.logTailBytes,
    maxOutputBytes: config.maxOutputBytes,
    maxInputBytes: config.maxInputBytes,
    maxTaskMs: config.maxTaskMinutes * 60_000,
    maxProgressBytes: config.maxProgressBytes,
    allowedScripts: config.allowedScripts,
    env: childEnvironment(env),
    dieWithRunner: true,
    ...(config.uid !== undefined ? { uid: config.uid } : {}),
    ...(config.gid !== undefined ? { gid: config.gid } : {}),
  };
}
