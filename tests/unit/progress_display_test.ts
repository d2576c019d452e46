import { assertEquals, assertThrows } from "../helpers/assert.ts";
import { ProgressDisplay, progressView } from "../../src/local/progress_display.ts";
import { parseDuration } from "../../src/local/duration.ts";
import { InvalidArgumentError } from "@commander-js/extra-typings";

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("progressView() reads progress, total and message", async (t) => {
  await t.step("progress with a total", () => {
    assertEquals(progressView(bytes('{"progress": 1, "total": 4, "message": "a"}')), {
      fraction: 0.25,
      label: "1/4",
      message: "a",
    });
  });
  await t.step("a fraction without total", () => {
    assertEquals(progressView(bytes('{"progress": 0.5}')), {
      fraction: 0.5,
      label: "50%",
      message: undefined,
    });
  });
  await t.step("a number without total", () => {
    assertEquals(progressView(bytes('{"progress": 17}')), {
      fraction: undefined,
      label: "17",
      message: undefined,
    });
  });
  await t.step("anything else is no bar", () => {
    assertEquals(progressView(bytes('{"status": "ok"}')), undefined);
    assertEquals(progressView(bytes("not json")), undefined);
    assertEquals(progressView(bytes('{"progress": "1"}')), undefined);
  });
});

Deno.test("ProgressDisplay writes plain lines when stderr is not a terminal", () => {
  let text = "";
  const display = new ProgressDisplay({ terminal: false, write: (part) => text += part });
  display.progress(bytes('{"progress": 2, "total": 3, "message": "step"}'));
  display.progress(bytes('{"phase":\n"load"}'));
  display.log("stderr", "warning");
  display.close();
  assertEquals(text, '[progress] 2/3 67% step\n[progress] {"phase": "load"}\n[stderr] warning\n');
});

Deno.test("ProgressDisplay redraws a bar on a terminal, lines scrolling above it", () => {
  let text = "";
  const display = new ProgressDisplay({
    terminal: true,
    write: (part) => text += part,
    columns: () => 80,
  });
  display.progress(bytes('{"progress": 0.5}'));
  display.log("stdout", "hello");
  display.close();
  const bar = `[${"#".repeat(12)}${"-".repeat(12)}] 50%`;
  assertEquals(text, `\r\x1b[2K${bar}\r\x1b[2K[stdout] hello\n${bar}\n`);
});

Deno.test("parseDuration() reads seconds, minutes, hours and bare minutes", () => {
  assertEquals(parseDuration("90s"), 90_000);
  assertEquals(parseDuration("5m"), 300_000);
  assertEquals(parseDuration("1.5m"), 90_000);
  assertEquals(parseDuration("2h"), 7_200_000);
  assertEquals(parseDuration("2"), 120_000);
  assertEquals(parseDuration("250ms"), 250);
  for (const bad of ["", "0", "-1m", "5 minutes", "m"]) {
    assertThrows(() => parseDuration(bad), InvalidArgumentError);
  }
});
