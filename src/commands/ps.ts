import { Command } from "@commander-js/extra-typings";
import { writeLine } from "../local/output.ts";
import type { TaskSnapshot } from "../observability/task_table.ts";
import type { CommandContext } from "./context.ts";
import { fetchTasks, HTTP_URL_FLAG, HTTP_URL_HELP, runnerEndpoint } from "./runner_endpoint.ts";

/** The `ps` command: what a serving runner is working on now. */
export function psCommand(context: CommandContext) {
  return new Command("ps")
    .description("List the tasks a serving runner is working on (from its HTTP endpoint)")
    .option(HTTP_URL_FLAG, HTTP_URL_HELP)
    .option("--json", "print the runner's answer as JSON instead of a table")
    .exitOverride()
    .action(async (options) => {
      const endpoint = runnerEndpoint(options.httpUrl, context.env);
      const tasks = await fetchTasks(endpoint);
      await writeLine(
        options.json ? JSON.stringify({ tasks }) : formatTaskTable(tasks, Date.now()),
      );
    });
}

const COLUMNS = [
  "ID",
  "SCRIPT",
  "STATE",
  "PID",
  "ELAPSED",
  "LAST PROGRESS",
  "CANCEL",
  "DELIVERIES",
];

/**
 * The tasks as a table, one row each, columns padded to their widest cell (no trailing
 * newline); a line saying so when there are none.
 *
 * @param now the wall clock in ms, for the age of the last progress
 */
export function formatTaskTable(tasks: readonly TaskSnapshot[], now: number): string {
  if (tasks.length === 0) return "No tasks running";
  const rows = tasks.map((task) => [
    task.id,
    task.script,
    task.state,
    task.pid === null ? "-" : String(task.pid),
    formatSeconds(task.elapsed),
    task.lastProgress === null
      ? "-"
      : `${
        formatSeconds((now - Date.parse(task.lastProgress)) / 1000)
      } ago, ${task.lastProgressBytes} B`,
    task.cancelRequested ? "yes" : "no",
    String(task.deliveries),
  ]);
  const widths = COLUMNS.map((title, i) =>
    Math.max(title.length, ...rows.map((row) => row[i]!.length))
  );
  return [COLUMNS, ...rows]
    .map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd())
    .join("\n");
}

/** Seconds as a person reads them: `4.2s`, `3m05s`, `2h01m`. */
export function formatSeconds(seconds: number): string {
  const s = Math.max(0, seconds);
  if (s < 60) return `${s.toFixed(1)}s`;
  const whole = Math.floor(s);
  if (whole < 3600) return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, "0")}s`;
  return `${Math.floor(whole / 3600)}h${String(Math.floor(whole / 60) % 60).padStart(2, "0")}m`;
}
