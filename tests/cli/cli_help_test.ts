/**
 * `--help` of every command against its expected text in `tests/fixtures/help/`, so that a
 * change of the help is seen in review. After a wanted change, write the new texts with
 * `UPDATE_HELP=1 deno test -A tests/cli/cli_help_test.ts`.
 *
 * @module
 */
import { assertEquals, assertNotIncludes } from "../helpers/assert.ts";
import { runCli } from "../helpers/cli_run.ts";
import { SERVE_SECTIONS } from "../../src/commands/serve.ts";
import {
  BROKER_SETTINGS,
  ENGINE_SETTINGS,
  LOG_SETTINGS,
  RUNNER_SETTINGS,
} from "../../src/config/settings.ts";

const HELP_DIR = new URL("../fixtures/help/", import.meta.url);
const COMMANDS = ["", "serve", "run", "submit", "follow", "cancel", "ps", "inspect", "completion"];
const UPDATE = Deno.env.get("UPDATE_HELP") === "1";

Deno.test("--help of each command is its expected text", async (t) => {
  // Started together: each run costs a Deno start-up. Not a terminal: 80 columns.
  const helps = await Promise.all(
    COMMANDS.map((command) =>
      runCli([...(command ? [command] : []), "--help"], { env: { NO_COLOR: "1" } })
    ),
  );
  for (const [index, command] of COMMANDS.entries()) {
    const help = helps[index]!;
    const file = new URL(`${command || "taskrunner"}.txt`, HELP_DIR);
    await t.step(`taskrunner ${command} --help`.replace("  ", " "), async () => {
      assertEquals(help.code, 0, help.stderr);
      assertEquals(help.stderr, "");
      if (UPDATE) await Deno.writeTextFile(file, help.text);
      assertEquals(help.text, await Deno.readTextFile(file));
      assertNotIncludes(help.text, "(default: [])");
    });
  }
});

Deno.test("serve --help shows every setting under a heading of its subject", async () => {
  const help = await runCli(["serve", "--help"], { env: { NO_COLOR: "1" } });
  const headings = help.text.split("\n").filter((line) => /^\S.*:$/.test(line));
  assertEquals(headings, [
    "Broker:",
    "Queues:",
    "Tasks:",
    "Security:",
    "HTTP endpoint:",
    "Logging:",
    "Options:",
    "Examples:",
  ]);
  // Only the help stays under the default heading: a new setting must be given a subject.
  const start = help.text.indexOf("\nOptions:\n");
  const options = help.text.slice(start, help.text.indexOf("\n\n", start));
  assertEquals(options.trim().split("\n").map((line) => line.trim().split(/\s+/)[0]), [
    "Options:",
    "-h,",
  ]);
});

Deno.test("serve's help sections hold every setting of serve once", () => {
  const shown = SERVE_SECTIONS.flatMap((section) => Object.values(section.settings)).map((spec) =>
    spec.flag
  );
  const all = [BROKER_SETTINGS, ENGINE_SETTINGS, RUNNER_SETTINGS, LOG_SETTINGS].flatMap((group) =>
    Object.values(group).map((spec) => spec.flag)
  );
  // A setting added to a group must be given a section of serve --help, or it has no flag.
  assertEquals(shown.toSorted(), all.toSorted());
});
