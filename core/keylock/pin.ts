/**
 * The PIN as it crosses the link in a qubesair.Unlock call (docs/key-lock.md "Unlocking"): the
 * call's stdin is the PIN in UTF-8, optionally ended by one newline, nothing else. Both ends use
 * this parser: `qubes-air unlock` refuses a PIN the device would refuse before sending it, and the
 * device parses what arrives (peer bytes) with it.
 * Pure. Must never: accept control characters (a PIN typed on a terminal has none), or echo the
 * bytes in an error.
 */
import { ProtocolError } from "../errors.ts";

export const PIN_MIN_CHARS = 4;
export const PIN_MAX_CHARS = 128;
/** The request's bytes: the longest PIN in 4-byte UTF-8 and a newline. */
export const PIN_REQUEST_MAX_BYTES = PIN_MAX_CHARS * 4 + 1;

/** The PIN text, or a ProtocolError("schema") without the bytes in it. */
export function parsePin(bytes: Uint8Array): string {
  if (bytes.length > PIN_REQUEST_MAX_BYTES) throw new ProtocolError("frame-too-large", "PIN request");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ProtocolError("schema", "the PIN is not UTF-8");
  }
  if (text.endsWith("\n")) text = text.slice(0, -1);
  const chars = [...text].length;
  if (chars < PIN_MIN_CHARS || chars > PIN_MAX_CHARS)
    throw new ProtocolError("schema", `the PIN must be ${PIN_MIN_CHARS} to ${PIN_MAX_CHARS} characters`);
  if (/[\u0000-\u001f\u007f-\u009f]/.test(text))
    throw new ProtocolError("schema", "control character in the PIN");
  return text;
}
