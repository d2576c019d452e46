/** Longest line passed on whole unless the caller says otherwise (`maxLineChars`). */
export const MAX_LINE_CHARS = 1024 * 1024;

/** Options of {@linkcode forEachLine}. */
export interface LineOptions {
  /**
   * Longest line kept whole: a longer run without a line end (binary data, an endless line)
   * is passed on in pieces this long, so that memory stays bounded. Default
   * {@linkcode MAX_LINE_CHARS}.
   */
  maxLineChars?: number;
}

const LINE_END = /\r\n|\r|\n/g;

/**
 * Reads a byte stream as text lines (without their line ends), decoding UTF-8 leniently, as
 * Java's `BufferedReader.readLine()` did for the Java runner: `\n`, `\r` and `\r\n` each end a
 * line (a progress bar redrawn with `\r` gives a line per redraw), and the last line counts
 * even without a line end.
 *
 * @param stream the child's stdout or stderr
 * @param onLine called for each line
 * @param options the bound on a line's length
 */
export async function forEachLine(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
  options: LineOptions = {},
): Promise<void> {
  const maxChars = Math.max(1, options.maxLineChars ?? MAX_LINE_CHARS);
  let pending = "";
  // The last text ended with `\r`: a `\n` that starts the next one belongs to that line end.
  let skipNewline = false;
  const emit = (line: string) => {
    while (line.length > maxChars) {
      onLine(line.slice(0, maxChars));
      line = line.slice(maxChars);
    }
    onLine(line);
  };
  const take = (text: string) => {
    let start = 0;
    if (skipNewline && text.startsWith("\n")) start = 1;
    skipNewline = false;
    LINE_END.lastIndex = start;
    for (let match = LINE_END.exec(text); match; match = LINE_END.exec(text)) {
      emit(pending + text.slice(start, match.index));
      pending = "";
      start = match.index + match[0].length;
    }
    skipNewline = text.endsWith("\r");
    pending += text.slice(start);
    while (pending.length > maxChars) {
      onLine(pending.slice(0, maxChars));
      pending = pending.slice(maxChars);
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
