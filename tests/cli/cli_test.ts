import { assert, assertEquals, assertMatch, assertNotIncludes } from "../helpers/assert.ts";
import { VERSION } from "../../src/version.ts";
import { runCli } from "../helpers/cli_run.ts";

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `main.ts` with `args` (and `NO_COLOR`) in a subprocess; returns its exit code and output. */
async function cli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  const { code, text, stderr } = await runCli(args, { env: { NO_COLOR: "1", ...env } });
  return { code, stdout: text, stderr };
}

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line.trim().length > 0);
}

Deno.test("taskrunner --version, --help and serve --help exit 0 and print what they say", async (t) => {
  // Started together: each run costs a Deno start-up.
  const [version, help, serveHelp, helpWithSecret] = await Promise.all([
    cli(["--version"]),
    cli(["--help"]),
    cli(["serve", "--help"]),
    cli(["serve", "--help"], { TERARIUM_MQ_PASSWORD: "Sup3rS3cret" }),
  ]);
  await t.step("--version prints the version", () => {
    assertEquals([version.code, version.stdout, version.stderr], [0, `${VERSION}\n`, ""]);
  });
  await t.step("--help lists the commands", () => {
    assertEquals(help.code, 0, help.stderr);
    assertMatch(help.stdout, /^Usage: taskrunner /);
    for (const command of ["serve", "run", "submit", "cancel", "ps", "inspect"]) {
      assertMatch(help.stdout, new RegExp(`^  ${command} `, "m"), command);
    }
  });
  await t.step("serve --help lists the options with their variables", () => {
    assertEquals(serveHelp.code, 0, serveHelp.stderr);
    assertMatch(serveHelp.stdout, /^Usage: taskrunner serve /);
    for (
      const option of [
        "--amqp-url",
        "--mq-password",
        "--concurrency",
        "--durable-queues",
        "--allow-script",
        "--log-level",
        "--http-port",
      ]
    ) {
      assertMatch(serveHelp.stdout, new RegExp(`^  ${option} `, "m"), option);
    }
    const flat = serveHelp.stdout.replace(/\s+/g, " ");
    assertMatch(flat, /env TERARIUM_TASKRUNNER_REQUEST_CONCURRENCY, default 32/);
    assertMatch(flat, /env TERARIUM_MQ_PASSWORD\)/);
  });
  await t.step("serve --help never shows the broker password", () => {
    assertEquals(helpWithSecret.code, 0);
    assertNotIncludes(helpWithSecret.stdout + helpWithSecret.stderr, "Sup3rS3cret");
    const passwordHelp = serveHelp.stdout.slice(serveHelp.stdout.indexOf("--mq-password"));
    assertMatch(passwordHelp, /^[^]*?\(env TERARIUM_MQ_PASSWORD\)/, "no default shown");
  });
});

Deno.test("taskrunner serve exits 2 with one line naming a wrong setting", async (t) => {
  const secret = { TERARIUM_MQ_PASSWORD: "Sup3rS3cret" };
  const [byFlag, byEnv, badAddress, unknownOption] = await Promise.all([
    cli(["serve", "--concurrency", "zero"], secret),
    cli(["serve"], { ...secret, TERARIUM_TASKRUNNER_REQUEST_CONCURRENCY: "-1" }),
    cli(["serve"], { ...secret, TERARIUM_MQ_ADDRESSES: "http://x" }),
    cli(["serve", "--no-such-option"]),
  ]);
  await t.step("--concurrency zero", () => {
    assertEquals(byFlag.code, 2, byFlag.stderr);
    assertEquals(byFlag.stdout, "");
    const [line, ...rest] = lines(byFlag.stderr);
    assertEquals(rest, []);
    assertMatch(line!, /^taskrunner: Invalid setting --concurrency /);
    assertMatch(line!, /TERARIUM_TASKRUNNER_REQUEST_CONCURRENCY/);
    assertMatch(line!, /"zero"/);
    assertNotIncludes(byFlag.stderr, "Sup3rS3cret");
  });
  await t.step("TERARIUM_TASKRUNNER_REQUEST_CONCURRENCY=-1", () => {
    assertEquals(byEnv.code, 2, byEnv.stderr);
    assertEquals(lines(byEnv.stderr).length, 1, byEnv.stderr);
    assertMatch(byEnv.stderr, /from TERARIUM_TASKRUNNER_REQUEST_CONCURRENCY: "-1"/);
    assertNotIncludes(byEnv.stderr, "Sup3rS3cret");
  });
  await t.step("TERARIUM_MQ_ADDRESSES=http://x", () => {
    assertEquals(badAddress.code, 2, badAddress.stderr);
    assertEquals(lines(badAddress.stderr).length, 1, badAddress.stderr);
    assertMatch(badAddress.stderr, /--amqp-url \(TERARIUM_MQ_ADDRESSES\)/);
    assertMatch(badAddress.stderr, /amqp:\/\/ or amqps:\/\//);
    assertNotIncludes(badAddress.stderr, "Sup3rS3cret");
  });
  await t.step("an unknown option", () => {
    assertEquals(unknownOption.code, 2, unknownOption.stderr);
    assertMatch(unknownOption.stderr, /unknown option '--no-such-option'/);
    assert(!unknownOption.stderr.includes("    at "), "no stack trace");
  });
});

Deno.test("serve and run exit 2 at once on a work dir they cannot use", async (t) => {
  const file = await Deno.makeTempFile({ prefix: "taskrunner-not-a-dir-" });
  try {
    // Nothing listens on port 1: reaching the broker would be a different error.
    const broker = { TERARIUM_MQ_ADDRESSES: "amqp://127.0.0.1:1" };
    const [serveDev, runDev, serveFile] = await Promise.all([
      cli(["serve", "--work-dir", "/dev/shm/taskrunner-cli-test"], broker),
      cli(["run", "--work-dir", "/dev/shm/taskrunner-cli-test", "--input-json", "1", "true"]),
      cli(["serve", "--work-dir", `${file}/tasks`], broker),
    ]);
    await t.step("under /dev, which Deno allows only with --allow-all", () => {
      for (const result of [serveDev, runDev]) {
        assertEquals(result.code, 2, result.stderr);
        assertEquals(lines(result.stderr).length, 1, result.stderr);
        assertMatch(
          result.stderr,
          /^taskrunner: Invalid setting --work-dir "\/dev\/shm\/taskrunner-cli-test": .*--allow-all/,
        );
      }
    });
    await t.step("below a regular file", () => {
      assertEquals(serveFile.code, 2, serveFile.stderr);
      assertMatch(serveFile.stderr, /^taskrunner: Invalid setting --work-dir ".*\/tasks": /);
    });
  } finally {
    await Deno.remove(file);
  }
});
