/** Longest line kept whole; a longer run without a newline is passed on in pieces this long. */
export const MAX_LINE_CHARS = 64 * 1024;

/**
 * Reads a byte stream as text lines (without their line ends), decoding UTF-8 leniently.
 * Output that never ends a line (a progress bar redrawn with `\r`, binary data) is passed on
 * in pieces of {@linkcode MAX_LINE_CHARS}, so that memory stays bounded.
 *
 * @param stream the child's stdout or stderr
 * @param onLine called for each line, the last one even without a final newline
 */
export async function forEachLine(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const emit = (line: string) => {
    while (line.length > MAX_LINE_CHARS) {
      onLine(line.slice(0, MAX_LINE_CHARS));
      line = line.slice(MAX_LINE_CHARS);
    }
    onLine(line);
  };
  let pending = "";
  const take = (text: string) => {
    const lines = (pending + text).split("\n");
    pending = lines.pop()!;
    for (const line of lines) emit(line.endsWith("\r") ? line.slice(0, -1) : line);
    while (pending.length > MAX_LINE_CHARS) {
      onLine(pending.slice(0, MAX_LINE_CHARS));
      pending = pending.slice(MAX_LINE_CHARS);
    }
  };
  // A reader and a streaming decoder, not pipeThrough(new TextDecoderStream()): the same text,
  // without a transform stream and its pipe for each of a task's two streams.
  const decoder = new TextDecoder();
  const reader = stream.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      take(decoder.decode(value, { stream: true }));
    }
  } finally {
    reader.releaseLock();
  }
  take(decoder.decode());
  if (pending.length > 0) emit(pending);
}
