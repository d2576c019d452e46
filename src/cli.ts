import { Command, InvalidArgumentError } from "@commander-js/extra-typings";
import {
  BROKER_SETTINGS,
  ConfigError,
  ENGINE_SETTINGS,
  LOG_SETTINGS,
  resolveSettings,
  RUNNER_SETTINGS,
} from "./config.ts";
import { cancel } from "./commands/cancel.ts";
import { run } from "./commands/run.ts";
import { addSettingOptions } from "./commands/settings_options.ts";
import { serve } from "./commands/serve.ts";
import { submit } from "./commands/submit.ts";
import { parseDuration } from "./local/duration.ts";
import { readTaskInput } from "./local/task_input.ts";
import { DEFAULT_TIMEOUT_MINUTES } from "./protocol/mod.ts";
import { Logger } from "./observability/log.ts";
import { VERSION } from "./version.ts";

/** Where a command reads its environment; tests pass their own. */
export interface CliContext {
  env: Record<string, string | undefined>;
}

function loggerFrom(options: Record<string, unknown>, context: CliContext): Logger {
  const config = resolveSettings(LOG_SETTINGS, { options, env: context.env });
  return new Logger({ level: config.logLevel, format: config.logFormat });
}

/** The command line, and the exit code its command chose. */
export interface Cli {
  program: Command;
  /** Set by a command that ends with a code of its own (`run`, `submit --follow`); else 0. */
  readonly exitCode: number;
}

/**
 * Builds the `taskrunner` command line: `serve`, `run`, `submit` and `cancel`.
 *
 * @example
 * ```ts
 * const cli = buildCli();
 * await cli.program.parseAsync(["run", "task.py"], { from: "user" });
 * Deno.exitCode = cli.exitCode;
 * ```
 */
export function buildCli(context: CliContext = { env: Deno.env.toObject() }): Cli {
  let exitCode = 0;
  const program = new Command()
    .name("taskrunner")
    .description(
      "Runs long computational tasks as child processes behind RabbitMQ: a drop-in for the Terarium taskrunner.",
    )
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride();

  const serveCommand = new Command("serve")
    .description(
      "Consume task requests from RabbitMQ, run them, and publish their progress and results",
    )
    .exitOverride();
  addSettingOptions(serveCommand, BROKER_SETTINGS, ENGINE_SETTINGS, RUNNER_SETTINGS, LOG_SETTINGS);
  serveCommand.action(async (options: Record<string, unknown>) => {
    const sources = { options, env: context.env };
    const logger = loggerFrom(options, context);
    await serve({
      broker: resolveSettings(BROKER_SETTINGS, sources),
      engine: resolveSettings(ENGINE_SETTINGS, sources),
      runner: resolveSettings(RUNNER_SETTINGS, sources),
    }, { logger });
  });
  program.addCommand(serveCommand);

  const runCommand = new Command("run")
    .description(
      "Run one task here, as serve would, without a broker: progress on stderr, output on stdout",
    )
    .argument("<script>", "the task: a .py file, or an executable (path or name on PATH)")
    .exitOverride();
  addTaskOptions(runCommand);
  runCommand.option("--id <id>", "task id passed to the task (default: a random UUID)", parseId);
  addSettingOptions(runCommand, ENGINE_SETTINGS, LOG_SETTINGS);
  runCommand.action(async (script: string, options: Record<string, unknown>) => {
    const sources = { options, env: context.env };
    const logger = loggerFrom(options, context);
    const engine = resolveSettings(ENGINE_SETTINGS, sources);
    const input = await readTaskInput(inputSource(options));
    exitCode = await run({
      script,
      id: typeof options.id === "string" ? options.id : crypto.randomUUID(),
      input,
      timeoutMs: timeoutOf(options),
      outputFile: options.output as string | undefined,
      json: options.json === true,
      engine,
    }, { logger });
  });
  program.addCommand(runCommand);

  const submitCommand = new Command("submit")
    .description(
      "Publish a task request as the hmi-server does; with --follow, show its responses until it ends",
    )
    .argument("<script>", "the task, as the runner resolves it")
    .option("--type <type>", "request type (task family); same as --request-type")
    .option("--follow", "show the status and progress until the task ends; output on stdout")
    .option("--routing-key <key>", "routing key of the responses (default: a private one)")
    .exitOverride();
  addTaskOptions(submitCommand);
  addSettingOptions(submitCommand, BROKER_SETTINGS, LOG_SETTINGS);
  submitCommand.action(async (script: string, options: Record<string, unknown>) => {
    if (options.type !== undefined) {
      if (options.requestType !== undefined && options.requestType !== options.type) {
        throw new ConfigError("--type and --request-type differ; give one of them");
      }
      options.requestType = options.type;
    }
    const sources = { options, env: context.env };
    const logger = loggerFrom(options, context);
    const broker = resolveSettings(BROKER_SETTINGS, sources);
    const input = await readTaskInput(inputSource(options));
    exitCode = await submit({
      script,
      input,
      timeoutMs: timeoutOf(options),
      routingKey: options.routingKey as string | undefined,
      follow: options.follow === true,
      json: options.json === true,
      outputFile: options.output as string | undefined,
      broker,
    }, { logger });
  });
  program.addCommand(submitCommand);

  const cancelCommand = new Command("cancel")
    .description("Cancel a task: publish its cancellation as the hmi-server does")
    .argument("<task-id>", "the id of the task")
    .exitOverride();
  addSettingOptions(cancelCommand, BROKER_SETTINGS, LOG_SETTINGS);
  cancelCommand.action(async (taskId: string, options: Record<string, unknown>) => {
    const sources = { options, env: context.env };
    await cancel(taskId, {
      broker: resolveSettings(BROKER_SETTINGS, sources),
      logger: loggerFrom(options, context),
    });
  });
  program.addCommand(cancelCommand);

  return {
    program: program as unknown as Command,
    get exitCode() {
      return exitCode;
    },
  };
}

// The options `run` and `submit` share: input, time limit, output, JSON responses.
function addTaskOptions(command: Command<[string], Record<string, unknown>>): void {
  command
    .option("--input <file>", "read the input from a file (- for stdin)")
    .option("--input-json <json>", "give the input inline, as JSON text")
    .option(
      "--timeout <duration>",
      `inactivity limit of the task (progress restarts it): 90s, 5m, 1.5m, 2h, or a number of minutes (default ${DEFAULT_TIMEOUT_MINUTES}m)`,
      parseDuration,
    )
    .option("--output <file>", "write the output to a file instead of stdout")
    .option("--json", "print every response, one JSON object per line, on stdout");
}

function timeoutOf(options: Record<string, unknown>): number {
  return typeof options.timeout === "number" ? options.timeout : DEFAULT_TIMEOUT_MINUTES * 60_000;
}

function inputSource(options: Record<string, unknown>): { file?: string; json?: string } {
  return {
    ...(typeof options.input === "string" ? { file: options.input } : {}),
    ...(typeof options.inputJson === "string" ? { json: options.inputJson } : {}),
  };
}

function parseId(value: string): string {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(value)) {
    throw new InvalidArgumentError("Invalid task id: use 1 to 128 letters, digits, ., _ or -");
  }
  return value;
}
