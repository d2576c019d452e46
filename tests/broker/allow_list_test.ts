import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { makeRequest, outputText, ServerSide, testNames } from "../helpers/broker_harness.ts";
import { fixture, startRunner } from "../helpers/serve_harness.ts";

const NO_ALLOW_LIST_WARNING = "No script allow-list";

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("allow-list: an allowed script runs, another gets FAILED and is never spawned", async () => {
  const names = testNames("allow");
  await using server = await ServerSide.open(names);
  const workDir = await Deno.makeTempDir({ prefix: "taskrunner-allow-" });
  try {
    await using runner = startRunner(names, {
      allowScript: [fixture("echo.sh"), fixture("beh*.py")],
      workDir,
    });
    await runner.ready;
    assert(
      !runner.logs.some((line) => line.includes(NO_ALLOW_LIST_WARNING)),
      "no warning with an allow-list",
    );

    const allowed = makeRequest({ script: fixture("echo.sh"), input: "ok" }, names.routingKey);
    server.publishRequest(allowed);
    const allowedResponses = await server.terminal(allowed.id);
    assertEquals(allowedResponses.map((r) => r.status), ["RUNNING", "SUCCESS"]);
    assertEquals(outputText(allowedResponses.at(-1)), "ok");

    const denied = makeRequest({ script: fixture("marker.sh"), input: "x" }, names.routingKey);
    server.publishRequest(denied);
    const deniedResponses = await server.terminal(denied.id);
    assertEquals(deniedResponses.map((r) => r.status), ["FAILED"]);
    assertMatch(outputText(deniedResponses[0]), /script not allowed/);
    assertEquals(await server.queueDepth(), 0, "the denied request is acknowledged");

    assert(!await exists(`${workDir}/spawned-${denied.id}`), "the denied script never ran");
    // The allowed task's directory may still be on its way out: removed after its response.
    const left = (await Array.fromAsync(Deno.readDir(workDir))).map((entry) => entry.name);
    assertEquals(
      left.filter((name) => name.includes(denied.id)),
      [],
      "no FIFO directory was even made for it",
    );
  } finally {
    await Deno.remove(workDir, { recursive: true });
  }
});

Deno.test("allow-list: unset, any script runs and serve warns at start-up", async () => {
  const names = testNames("noallow");
  await using server = await ServerSide.open(names);
  const workDir = await Deno.makeTempDir({ prefix: "taskrunner-allow-" });
  try {
    await using runner = startRunner(names, { workDir });
    await runner.ready;
    assert(
      runner.logs.some((line) => line.includes(NO_ALLOW_LIST_WARNING) && line.includes("WARN")),
      "warned",
    );
    // The same fixture as above, to show that it leaves its marker when it does run.
    const request = makeRequest({ script: fixture("marker.sh"), input: "x" }, names.routingKey);
    server.publishRequest(request);
    const responses = await server.terminal(request.id);
    assertEquals(responses.at(-1)?.status, "SUCCESS");
    assert(await exists(`${workDir}/spawned-${request.id}`), "the script ran");
  } finally {
    await Deno.remove(workDir, { recursive: true });
  }
});

Deno.test("allow-list: patterns match whole paths, * matches within a path segment", async () => {
  const names = testNames("pattern");
  await using server = await ServerSide.open(names);
  // Was "*/fixtures/e*o.sh": * no longer crosses "/", and a relative pattern is taken from the
  // runner's working directory.
  await using runner = startRunner(names, { allowScript: [fixture("e*o.sh")] });
  await runner.ready;
  const ok = makeRequest({ script: fixture("echo.sh"), input: "" }, names.routingKey);
  // The pattern is anchored at both ends: a longer name does not match.
  const partial = makeRequest({ script: fixture("echo.sh") + ".bak" }, names.routingKey);
  const other = makeRequest({ script: "sh" }, names.routingKey);
  for (const request of [ok, partial, other]) server.publishRequest(request);
  assertEquals((await server.terminal(ok.id)).at(-1)?.status, "SUCCESS");
  for (const request of [partial, other]) {
    const responses = await server.terminal(request.id);
    assertEquals(responses.map((r) => r.status), ["FAILED"]);
    assertMatch(outputText(responses[0]), /script not allowed/);
  }
});

// Leaves "spawned-<id>" in the runner's work directory, then echoes its input.
const MARKING_TASK = `#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in --id) id=$2 ;; --input_pipe) i=$2 ;; --output_pipe) o=$2 ;; --progress_pipe) p=$2 ;; esac
  shift 2
done
touch "$(dirname "$(dirname "$i")")/spawned-$id"
printf '{"done":true}' > "$p"
cat "$i" > "$o"
`;

Deno.test("allow-list: serve refuses paths that walk around it, by their real path", async () => {
  const names = testNames("walk");
  await using server = await ServerSide.open(names);
  const workDir = await Deno.makeTempDir({ prefix: "taskrunner-allow-" });
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "taskrunner-tree-" }));
  try {
    for (const dir of ["tasks/sub", "evil"]) {
      await Deno.mkdir(`${root}/${dir}`, { recursive: true });
    }
    for (const file of ["tasks/ok.sh", "tasks/sub/deep.sh", "evil/evil.sh"]) {
      await Deno.writeTextFile(`${root}/${file}`, MARKING_TASK, { mode: 0o755 });
    }
    await Deno.symlink(`${root}/evil/evil.sh`, `${root}/tasks/link.sh`);
    await Deno.symlink(`${root}/tasks`, `${root}/linkdir`);
    // The pattern names the directory through a symlink, as a deployment may.
    await using runner = startRunner(names, { allowScript: [`${root}/linkdir/*.sh`], workDir });
    await runner.ready;
    const walks = [
      `${root}/tasks/ok.sh/../../evil/evil.sh`,
      `${root}/tasks/../evil/evil.sh`,
      `${root}/tasks/link.sh`,
      `${root}/tasks/sub/deep.sh`,
    ].map((script) => makeRequest({ script, input: "x" }, names.routingKey));
    const allowed = makeRequest({ script: `${root}/tasks/ok.sh`, input: "ok" }, names.routingKey);
    for (const request of [...walks, allowed]) server.publishRequest(request);
    for (const request of walks) {
      const responses = await server.terminal(request.id);
      assertEquals(responses.map((r) => r.status), ["FAILED"], String(request.script));
      assertMatch(outputText(responses[0]), /^Cannot start task ".*": script not allowed/);
    }
    const responses = await server.terminal(allowed.id);
    assertEquals(responses.map((r) => r.status), ["RUNNING", "SUCCESS"]);
    assertEquals(outputText(responses.at(-1)), "ok");
    const left = (await Array.fromAsync(Deno.readDir(workDir))).map((entry) => entry.name);
    assertEquals(
      left.filter((name) => name.startsWith("spawned-")),
      [`spawned-${allowed.id}`],
      "only the allowed script ran",
    );
    for (const request of walks) {
      assertEquals(left.filter((name) => name.includes(request.id)), [], "no FIFO directory made");
    }
  } finally {
    await Deno.remove(workDir, { recursive: true });
    await Deno.remove(root, { recursive: true });
  }
});
