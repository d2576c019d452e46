import { AssertionError } from "node:assert/strict";
import { assertEquals, assertThrows } from "../helpers/assert.ts";

Deno.test("assertEquals() tells apart what JSON text cannot", async (t) => {
  const cases: [string, unknown, unknown][] = [
    ["undefined and a missing key", { a: undefined }, {}],
    ["-0 and 0", -0, 0],
    ["a Map and an empty object", new Map([["a", 1]]), {}],
    ["NaN and null", NaN, null],
  ];
  for (const [name, actual, expected] of cases) {
    await t.step(name, () => {
      assertThrows(() => assertEquals(actual, expected), AssertionError);
    });
  }
});

Deno.test("assertEquals() puts the test's message before the values", () => {
  const error = assertThrows(() => assertEquals({ a: 1 }, { a: 2 }, "the field"), AssertionError);
  assertEquals(error.message.startsWith("the field: "), true);
  assertEquals(error.message.includes("a: 2"), true, error.message);
});
