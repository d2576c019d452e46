/**
 * The completion scripts of `taskrunner completion bash|zsh|fish`, loaded by the real shells:
 * bash always; zsh and fish where they are installed (`apt-get install zsh fish`).
 *
 * @module
 */
import { assertEquals, assertMatch } from "../helpers/assert.ts";
import { RUN_PERMISSIONS } from "../../src/permissions.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

function installed(shell: string): boolean {
  try {
    return new Deno.Command(shell, { args: ["-c", "exit 0"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** A directory holding a `taskrunner` that runs this checkout, to put first on PATH. */
async function taskrunnerOnPath(): Promise<{ path: string; dir: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "taskrunner-completion-" });
  await Deno.writeTextFile(
    `${dir}/taskrunner`,
    `#!/bin/sh\nexec "${Deno.execPath()}" run ${RUN_PERMISSIONS.join(" ")} "${ROOT}main.ts" "$@"\n`,
    { mode: 0o755 },
  );
  return {
    dir,
    path: `${dir}:${Deno.env.get("PATH")}`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

async function shell(
  name: string,
  script: string,
  path: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(name, {
    args: name === "zsh" ? ["-f", "-c", script] : ["-c", script],
    env: { PATH: path, NO_COLOR: "1" },
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

// Completes `line` (the cursor at its end) with the bash function, one candidate a line.
function bashCompletes(line: string): string {
  const words = line.split(" ");
  const array = words.map((word) => `'${word}'`).join(" ");
  return `COMP_WORDS=(${array}); COMP_CWORD=${words.length - 1}; COMPREPLY=(); _taskrunner; ` +
    `printf '%s\\n' "\${COMPREPLY[@]}"`;
}

Deno.test("completion bash loads in bash and completes commands, options and values", async (t) => {
  await using bin = await taskrunnerOnPath();
  const load = "source <(taskrunner completion bash) && ";
  await t.step("complete -p names its function", async () => {
    const result = await shell("bash", `${load}complete -p taskrunner`, bin.path);
    assertEquals(result.code, 0, result.stderr);
    assertEquals(result.stdout, "complete -F _taskrunner taskrunner\n");
  });
  const cases: Array<[string, string[]]> = [
    ["taskrunner s", ["serve", "submit"]],
    ["taskrunner ca", ["cancel"]],
    ["taskrunner cancel --c", ["--connect-timeout", "--cancellation-exchange"]],
    ["taskrunner cancel --request", []], // cancel takes no request queue
    ["taskrunner completion ", ["bash", "zsh", "fish"]],
    ["taskrunner serve --work-dir tests/fixture", ["tests/fixtures"]],
    ["taskrunner run tests/fixtures/ech", ["tests/fixtures/echo.sh"]],
    ["taskrunner submit --request-type gollm --follow tests/fixtures/ech", [
      "tests/fixtures/echo.sh",
    ]],
    ["taskrunner serve --allow-s", ["--allow-script"]],
  ];
  // One bash for all cases: each costs the script's generation.
  const script = load + cases.map(([line]) => `${bashCompletes(line)}; echo ---`).join("; ");
  const result = await shell("bash", script, bin.path);
  assertEquals(result.code, 0, result.stderr);
  const outputs = result.stdout.split("---\n");
  for (const [index, [line, expected]] of cases.entries()) {
    await t.step(`"${line}"`, () => {
      const candidates = outputs[index]!.split("\n").filter((word) => word.length > 0);
      assertEquals(candidates, expected);
    });
  }
});

Deno.test({
  name: "completion zsh is valid zsh and registers its function",
  ignore: !installed("zsh"),
  fn: async () => {
    await using bin = await taskrunnerOnPath();
    const file = `${bin.dir}/_taskrunner`;
    const result = await shell(
      "zsh",
      `taskrunner completion zsh > ${file} && zsh -n ${file} && ` +
        `autoload -U compinit && compinit -u -D && source ${file} && ` +
        "print -r -- $_comps[taskrunner]",
      bin.path,
    );
    assertEquals(result.code, 0, result.stderr);
    assertEquals(result.stdout, "_taskrunner\n");
  },
});

Deno.test({
  name: "completion fish is valid fish and completes commands, options and values",
  ignore: !installed("fish"),
  fn: async () => {
    await using bin = await taskrunnerOnPath();
    const script = [
      "taskrunner completion fish | source",
      "complete -C 'taskrunner s'",
      "echo ---",
      "complete -C 'taskrunner cancel --cancel'",
      "echo ---",
      "complete -C 'taskrunner completion '",
    ].join("; ");
    const syntax = await shell("fish", "taskrunner completion fish | fish -n", bin.path);
    assertEquals(syntax.code, 0, syntax.stderr);
    const result = await shell("fish", script, bin.path);
    assertEquals(result.code, 0, result.stderr);
    const [commands, options, shells] = result.stdout.split("---\n").map((part) =>
      part.split("\n").filter((line) => line.length > 0).map((line) => line.split("\t")[0])
    );
    assertEquals(commands, ["serve", "submit"]);
    assertEquals(options, ["--cancellation-exchange"]);
    assertEquals(shells!.toSorted(), ["bash", "fish", "zsh"]);
    assertMatch(result.stdout, /^serve\tConsume task requests/m);
  },
});
