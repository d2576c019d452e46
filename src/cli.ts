import { Command } from "@commander-js/extra-typings";
import { cancelCommand } from "./commands/cancel.ts";
import type { CommandContext } from "./commands/context.ts";
import { inspectCommand } from "./commands/inspect.ts";
import { psCommand } from "./commands/ps.ts";
import { runCommand } from "./commands/run.ts";
import { serveCommand } from "./commands/serve.ts";
import { submitCommand } from "./commands/submit.ts";
import { VERSION } from "./version.ts";

/** Where a command reads its environment; tests pass their own. */
export interface CliContext {
  env: Record<string, string | undefined>;
}

/** The command line, and the exit code its command chose. */
export interface Cli {
  program: Command;
  /** Set by a command that ends with a code of its own (`run`, `submit --follow`); else 0. */
  readonly exitCode: number;
}

/**
 * Builds the `taskrunner` command line from the commands, each defined in its own file:
 * `serve`, `run`, `submit` and `cancel`.
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
  const commandContext: CommandContext = {
    env: context.env,
    setExitCode: (code) => exitCode = code,
  };
  const program = new Command()
    .name("taskrunner")
    .description(
      "Runs long computational tasks as child processes behind RabbitMQ: a drop-in for the Terarium taskrunner.",
    )
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride();
  for (const command of [serveCommand, runCommand, submitCommand, cancelCommand]) {
    program.addCommand(command(commandContext));
  }
  program.addCommand(psCommand(commandContext));
  program.addCommand(inspectCommand(commandContext));
  return {
    program,
    get exitCode() {
      return exitCode;
    },
  };
}
