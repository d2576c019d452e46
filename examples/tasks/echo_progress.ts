#!/usr/bin/env -S deno run --allow-read --allow-write --allow-env
/**
 * Example task: echo the input back as output after a few progress messages.
 *
 * Input: any bytes; if it is a JSON object with an integer `progress_steps` field, that many
 * progress messages are sent (default 3). Optional `step_seconds` sleeps between steps.
 *
 * Run by the taskrunner as
 * `echo_progress.ts --id <uuid> --input_pipe <p> --output_pipe <p> --progress_pipe <p>`,
 * or by hand as `./echo_progress.ts --id x --input '{"progress_steps": 2}'`.
 *
 * @module
 */
import { Task } from "../../tasklib/typescript/mod.ts";

/** Parameters this task understands in its input. */
interface EchoRequest {
  progress_steps?: unknown;
  step_seconds?: unknown;
}

function parseRequest(text: string): { steps: number; stepSeconds: number } {
  let steps = 3;
  let stepSeconds = 0;
  try {
    const request: unknown = JSON.parse(text);
    if (typeof request === "object" && request !== null && !Array.isArray(request)) {
      const { progress_steps, step_seconds } = request as EchoRequest;
      if (typeof progress_steps === "number" && Number.isInteger(progress_steps)) {
        steps = Math.max(0, progress_steps);
      }
      if (typeof step_seconds === "number") stepSeconds = step_seconds;
    }
  } catch {
    // not JSON: echo it anyway
  }
  return { steps, stepSeconds };
}

if (import.meta.main) {
  const task = new Task();
  task.onCancel(() => task.log("echo_progress: cancelled, cleaning up"));

  const input = await task.readInput();
  const { steps, stepSeconds } = parseRequest(new TextDecoder().decode(input));
  for (let i = 1; i <= steps; i++) {
    if (stepSeconds > 0) await new Promise((resolve) => setTimeout(resolve, stepSeconds * 1000));
    await task.writeProgress({ progress: i, total: steps, message: `step ${i} of ${steps}` });
  }
  await task.writeOutput(input);
  task.shutdown();
}
