import { Command } from "@commander-js/extra-typings";
import {
  BROKER_SETTINGS,
  ENGINE_SETTINGS,
  LOG_SETTINGS,
  resolveSettings,
  RUNNER_SETTINGS,
} from "./config.ts";
import { addSettingOptions } from "./commands/settings_options.ts";
import { serve } from "./commands/serve.ts";
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

/** Builds the `taskrunner` command line: `serve`, plus whatever the other modules register. */
export function buildCli(context: CliContext = { env: Deno.env.toObject() }): Command {
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
  return program as unknown as Command;
}
