/**
 * Reads a byte stream as text lines (without their line ends), decoding UTF-8 leniently.
 *
 * @param stream the child's stdout or stderr
 * @param onLine called for each line, the last one even without a final newline
 */
export async function forEachLine(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let pending = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (pending + text).split("\n");
    pending = lines.pop()!;
    for (const line of lines) onLine(line.endsWith("\r") ? line.slice(0, -1) : line);
  }
  if (pending.length > 0) onLine(pending);
}
