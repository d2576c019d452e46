import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { makeRequest, outputText, ServerSide } from "../helpers/broker_harness.ts";
import { brokerFlags, CliChild } from "../helpers/cli_run.ts";
import { uniqueNames } from "../helpers/ops_harness.ts";

// "nobody" on Debian: the runner must not be root, which may read any process's environment.
const USER = { uid: 65534, gid: 65534 };

const ROOT = new URL("../..", import.meta.url).pathname;

async function copy(sources: string[], target: string): Promise<void> {
  const { success, stderr } = await new Deno.Command("cp", { args: ["-r", ...sources, target] })
    .output();
  assert(success, `cp ${sources.join(" ")}: ${new TextDecoder().decode(stderr)}`);
}

/**
 * What the runner's user needs, wherever the checkout lies and whatever its modes: a copy of
 * the program and the fixtures in `dir/app`, and a DENO_DIR with the tests' npm cache.
 */
async function prepareFor(dir: string): Promise<{ app: string; denoDir: string }> {
  const app = `${dir}/app`;
  const denoDir = `${dir}/deno`;
  await Deno.mkdir(app);
  await Deno.mkdir(denoDir);
  await copy(
    ["main.ts", "deno.json", "deno.lock", "src", "tests/fixtures"].map((p) => ROOT + p),
    app,
  );
  const cache = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
  await copy([`${cache}/npm`], denoDir);
  return { app, denoDir };
}

Deno.test({
  name: "serve: a task running as the runner's own user cannot read the runner's environment",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const names = uniqueNames("environ");
    const dir = await Deno.makeTempDir({ prefix: "taskrunner-nodump-" });
    try {
      const { app, denoDir } = await prepareFor(dir);
      await Deno.mkdir(`${dir}/work`);
      const chown = await new Deno.Command("chown", {
        args: ["-R", `${USER.uid}:${USER.gid}`, dir],
      }).output();
      assert(chown.success, "chown of the runner's directories");
      await Deno.chmod(dir, 0o755);

      await using server = await ServerSide.open(names);
      await using runner = new CliChild(["serve", ...brokerFlags(names)], {
        user: USER,
        cwd: app,
        env: {
          DENO_DIR: denoDir,
          HOME: dir,
          TERARIUM_TASKRUNNER_WORK_DIR: `${dir}/work`,
        },
      });
      await runner.ready(60_000);

      // The task gets the runner's pid (its parent may be a wrapper) as its input.
      const request = makeRequest(
        { script: `${app}/fixtures/read_environ.sh`, input: String(runner.pid) },
        names.routingKey,
      );
      server.publishRequest(request);
      const responses = await server.terminal(request.id, 30_000);
      assertEquals(responses.at(-1)?.status, "SUCCESS", outputText(responses.at(-1)));
      assertMatch(outputText(responses.at(-1)), /^denied: .*Permission denied/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
