import { assertEquals } from "../helpers/assert.ts";
import { Logger } from "../../src/observability/log.ts";
import { RepeatedWarning, RepeatedWarnings } from "../../src/observability/repeated_warning.ts";

function logged(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: new Logger({ level: "debug", sink: (line) => lines.push(line) }), lines };
}

Deno.test("RepeatedWarning logs the first occurrence, then at most once a minute with a count, then one recovery line", () => {
  const { logger, lines } = logged();
  let now = 0;
  const warning = new RepeatedWarning(logger, "Cannot publish", { now: () => now });
  assertEquals(warning.report({ exchange: "x" }), true);
  for (let i = 0; i < 500; i++) {
    now += 100; // 10 a second for 50 s
    warning.report({ exchange: "x" });
  }
  assertEquals(lines.length, 1, "one line in the first minute");
  now += 10_001;
  assertEquals(warning.report({ exchange: "x" }), true, "a minute after the first line");
  assertEquals(lines.length, 2);
  assertEquals(lines[1]!.includes("repeated=501"), true, lines[1]);
  assertEquals(lines[1]!.includes("total=502"), true, lines[1]);
  assertEquals(warning.active, true);
  assertEquals(warning.recovered("Publishing again"), true);
  assertEquals(lines.length, 3);
  assertEquals(lines[2]!.includes("INFO"), true, lines[2]);
  assertEquals(lines[2]!.includes("occurrences=502"), true, lines[2]);
  assertEquals(warning.recovered("Publishing again"), false, "said once");
  assertEquals(warning.report(), true, "a new episode is logged at once");
  assertEquals(lines.length, 4);
});

Deno.test("RepeatedWarnings keeps one throttle per key", () => {
  const { logger, lines } = logged();
  const warnings = new RepeatedWarnings(logger, "Response not routed", { now: () => 0 });
  warnings.report("a");
  warnings.report("a");
  warnings.report("b");
  assertEquals(lines.length, 2, "each key's first line");
  assertEquals(warnings.recovered("a", "Routed again"), true);
  assertEquals(warnings.recovered("a", "Routed again"), false);
  assertEquals(lines.length, 3);
});
