import { assertEquals } from "../helpers/assert.ts";

const PRCTL = new URL("../../src/os/prctl.ts", import.meta.url).href;
const LIBC = new URL("../../src/os/libc.ts", import.meta.url).href;

Deno.test("makeNonDumpable() makes the runner non-dumpable through the start-up binding", async () => {
  // In a process of its own: the test runner stays as it is. PR_GET_DUMPABLE is 3.
  const code = `
    import { makeNonDumpable } from "${PRCTL}";
    import { procLibc } from "${LIBC}";
    const dumpable = () => procLibc().prctl(3, 0n, 0n, 0n, 0n);
    const before = dumpable();
    makeNonDumpable();
    console.log(JSON.stringify([before, dumpable()]));
  `;
  const { code: exitCode, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdin: "null",
  }).output();
  assertEquals(exitCode, 0, new TextDecoder().decode(stderr));
  assertEquals(JSON.parse(new TextDecoder().decode(stdout)), [1, 0]);
});
