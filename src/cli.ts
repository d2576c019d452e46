import { Command, type OptionValues } from "@commander-js/extra-typings";
import { cancelCommand } from "./commands/cancel.ts";
import { completionCommand } from "./commands/completion.ts";
import type { CommandContext } from "./commands/context.ts";
import { followCommand } from "./commands/follow.ts";
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

/** A command of the program, built with what commands take from it. */
type CommandFactory = (context: CommandContext) => Command<unknown[], OptionValues>;

/**
 * The commands, in the order `--help` lists them; each is defined in its own file. A new
 * command is one line here (`completion`, added last, completes them all).
 */
const COMMANDS: readonly CommandFactory[] = [
  serveCommand,
  runCommand,
  submitCommand,
  followCommand,
  cancelCommand,
  psCommand,
  inspectCommand,
];

/**
 * Builds the `taskrunner` command line from {@linkcode COMMANDS}, and `completion`.
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
  for (const command of COMMANDS) program.addCommand(command(commandContext));
  program.addCommand(completionCommand(program));
  return {
    program,
    get exitCode() {
      return exitCode;
    },
  };
}
