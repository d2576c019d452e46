/**
 * The `taskrunner` program: parses the command line and turns errors into exit codes. Nothing
 * below this file exits the process.
 *
 * @module
 */
import { CommanderError } from "@commander-js/extra-typings";
import { buildCli } from "./src/cli.ts";
import { ConfigError } from "./src/config/settings.ts";
import { errorMessage } from "./src/util/async.ts";
import { writeStderr } from "./src/util/stderr.ts";

async function main(args: string[]): Promise<number> {
  try {
    const cli = buildCli();
    await cli.program.parseAsync(args, { from: "user" });
    return cli.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof ConfigError) {
      writeStderr(`taskrunner: ${error.message}\n`);
      return error.exitCode;
    }
    writeStderr(`taskrunner: ${errorMessage(error)}\n`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exitCode = await main(Deno.args);
}
