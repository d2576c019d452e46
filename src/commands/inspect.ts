import { Command } from "@commander-js/extra-typings";
import { writeLine } from "../local/output.ts";
import type { CommandContext } from "./context.ts";
import { fetchTask, HTTP_URL_FLAG, HTTP_URL_HELP, runnerEndpoint } from "./runner_endpoint.ts";

/** The `inspect` command: everything a serving runner knows of one task it is working on. */
export function inspectCommand(context: CommandContext) {
  return new Command("inspect")
    .description("Show one task a serving runner is working on, as JSON (from its HTTP endpoint)")
    .argument("<task-id>", "the id of the task")
    .option(HTTP_URL_FLAG, HTTP_URL_HELP)
    .exitOverride()
    .action(async (taskId, options) => {
      const endpoint = runnerEndpoint(options.httpUrl, context.env);
      await writeLine(JSON.stringify(await fetchTask(endpoint, taskId), null, 2));
    });
}
