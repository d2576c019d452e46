/**
 * Structural checks of the migrated Terarium task images in examples/terarium/ (no Docker engine
 * runs here): the Java taskrunner is gone, the binary comes from where the root Dockerfile puts
 * it, tini is PID 1, and what the real images had (bases, task library install) stays.
 *
 * @module
 */
import { assert, assertEquals } from "../helpers/assert.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** One Dockerfile instruction, continuation lines joined, comments dropped. */
interface Instruction {
  keyword: string;
  args: string;
}

/** A build stage: its FROM and the instructions after it. */
interface Stage {
  base: string;
  name: string | undefined;
  instructions: Instruction[];
}

function parseDockerfile(text: string): { args: Instruction[]; stages: Stage[] } {
  const instructions: Instruction[] = [];
  let pending = "";
  for (const line of text.split("\n")) {
    if (/^\s*#/.test(line)) continue;
    pending += line.replace(/\\\s*$/, " ");
    if (/\\\s*$/.test(line)) continue;
    const match = pending.trim().match(/^(\S+)\s*(.*)$/s);
    if (match) instructions.push({ keyword: match[1]!.toUpperCase(), args: match[2]!.trim() });
    pending = "";
  }
  const args: Instruction[] = [];
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") {
      // Flags such as --platform come first.
      const [base, as, name] = instruction.args.split(/\s+/).filter((word) =>
        !word.startsWith("--")
      );
      assert(base !== undefined && (as === undefined || /^as$/i.test(as)), instruction.args);
      stages.push({ base, name, instructions: [] });
    } else if (stages.length === 0) {
      args.push(instruction);
    } else {
      stages.at(-1)!.instructions.push(instruction);
    }
  }
  return { args, stages };
}

/** Where the root Dockerfile's final stage puts the binary. */
async function binaryPathOfRunnerImage(): Promise<string> {
  const { stages } = parseDockerfile(await Deno.readTextFile(`${ROOT}Dockerfile`));
  const copies = stages.at(-1)!.instructions
    .filter((step) => step.keyword === "COPY" && step.args.startsWith("--from=build "))
    .map((step) => step.args.split(/\s+/).at(-1)!);
  assertEquals(copies.length, 1, "copies of the binary in the root Dockerfile");
  return copies[0]!;
}

const IMAGES = [
  { image: "gollm", bases: ["python:3.11-slim-bookworm", "python:3.11-slim-bookworm"] },
  { image: "mira", bases: ["python:3.10-bookworm", "python:3.10-bookworm"] },
  {
    image: "funman",
    bases: ["ghcr.io/darpa-askem/funman-base:latest", "ghcr.io/darpa-askem/funman-base:latest"],
  },
];

Deno.test("the migrated Terarium images run the binary under tini, without Java", async (t) => {
  const binary = await binaryPathOfRunnerImage();
  for (const { image, bases } of IMAGES) {
    await t.step(image, async () => {
      const dir = `${ROOT}examples/terarium/${image}`;
      const { args, stages } = parseDockerfile(await Deno.readTextFile(`${dir}/Dockerfile`));
      const [runner, builder, final] = stages;
      assertEquals(stages.length, 3, "stages: the runner image, the builder, the final image");
      assertEquals(args, [{
        keyword: "ARG",
        args: "TASKRUNNER_IMAGE=ghcr.io/darpa-askem/taskrunner:latest",
      }]);
      assertEquals([runner!.base, runner!.name], ["${TASKRUNNER_IMAGE}", "taskrunner"]);
      assertEquals([builder!.base, final!.base], bases, "the original's bases");
      assertEquals(builder!.name, `${image}_taskrunner_builder`, "the dev target keeps its name");

      const copyOfBinary = `--from=taskrunner ${binary} /usr/local/bin/taskrunner`;
      for (const stage of [builder!, final!]) {
        const copies = stage.instructions.filter((step) =>
          step.args.startsWith("--from=taskrunner")
        );
        assertEquals(copies, [{ keyword: "COPY", args: copyOfBinary }], `${stage.name ?? "final"}`);
      }
      const finalSteps = final!.instructions;
      assert(
        finalSteps.some((step) =>
          step.keyword === "RUN" && /apt-get install [^&]*\btini\b/.test(step.args)
        ),
        "tini is not installed in the final image",
      );
      assertEquals(finalSteps.slice(-2), [
        { keyword: "ENTRYPOINT", args: '["tini", "--"]' },
        { keyword: "CMD", args: '["taskrunner", "serve"]' },
      ]);
      // The task library is installed as in the real image.
      for (const file of ["setup.py", "taskrunner.py"]) {
        const copy = `./packages/taskrunner/${file} /taskrunner/${file}`;
        assert(finalSteps.some((step) => step.keyword === "COPY" && step.args === copy), copy);
      }
      assert(
        finalSteps.some((step) => step.args === "pip install --no-cache-dir --editable ."),
        "the editable installs are gone",
      );

      const everything = stages.flatMap((stage) => stage.instructions).map((step) => step.args);
      for (const java of [/openjdk/, /\bjava\b/, /gradle/, /\.jar\b/]) {
        assert(!everything.some((text) => java.test(text)), `${java} in ${image}'s Dockerfile`);
      }
      const devScript = await Deno.readTextFile(`${dir}/dev.sh`);
      const devCommands = devScript.split("\n").filter((line) => !/^\s*#/.test(line));
      assert(!devCommands.some((line) => /gradle/.test(line)), `gradle in ${image}/dev.sh`);
      assert(devScript.trimEnd().endsWith("exec taskrunner serve"), `${image}/dev.sh's end`);
    });
  }
});
