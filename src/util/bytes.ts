/**
 * Joins byte arrays into one.
 *
 * @param parts the arrays, in order
 * @param size their total length, when the caller already knows it
 */
export function concatBytes(
  parts: readonly Uint8Array[],
  size = parts.reduce((total, part) => total + part.length, 0),
): Uint8Array {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
