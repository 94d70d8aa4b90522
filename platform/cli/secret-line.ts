/**
 * Reading a secret line (a PIN) for a CLI: from the terminal without echo when stdin is a tty
 * (raw mode; Backspace edits, Ctrl-C/Ctrl-D give up), else the first line of stdin (scripts,
 * tests). Used by `qubes-air unlock` in sys-remote and `qubes-air-agent gpg-setup --pin` on the
 * device.
 * Must never: echo the secret, leave the terminal in raw mode, or read past the first line's cap.
 */

/** A line longer than this is not a PIN. */
const MAX_LINE_BYTES = 1024;

/** The user gave up at the prompt (Ctrl-C, Ctrl-D on an empty line, or EOF). */
export class SecretInputAborted extends Error {
  override readonly name = "SecretInputAborted";
  constructor() {
    super("no input");
  }
}

/** Reads one line; `prompt` goes to stderr when reading from a terminal. */
export async function readSecretLine(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (stdin.isTTY) return readFromTty(prompt);
  return readFirstLine();
}

function readFirstLine(): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const done = (fn: () => void) => {
      process.stdin.off("data", onData);
      process.stdin.off("end", onEnd);
      process.stdin.pause();
      fn();
    };
    const onData = (c: Buffer) => {
      chunks.push(c);
      n += c.length;
      const all = Buffer.concat(chunks);
      const nl = all.indexOf(10);
      if (nl >= 0) done(() => resolve(all.subarray(0, nl).toString("utf8")));
      else if (n > MAX_LINE_BYTES) done(() => reject(new SecretInputAborted()));
    };
    const onEnd = () => {
      const all = Buffer.concat(chunks);
      done(() => (all.length > 0 ? resolve(all.toString("utf8")) : reject(new SecretInputAborted())));
    };
    process.stdin.on("data", onData);
    process.stdin.on("end", onEnd);
    process.stdin.resume();
  });
}

function readFromTty(prompt: string): Promise<string> {
  const stdin = process.stdin;
  // Echo goes off before the prompt shows: whatever is typed (or pasted) once the prompt is
  // visible must never reach the screen.
  stdin.setRawMode(true);
  process.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let line = "";
    const finish = (fn: () => void) => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write("\n");
      fn();
    };
    const onData = (c: Buffer) => {
      for (const ch of c.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return finish(() => resolve(line));
        if (ch === "\u0003" || (ch === "\u0004" && line === ""))
          return finish(() => reject(new SecretInputAborted()));
        if (ch === "\u007f" || ch === "\b") line = [...line].slice(0, -1).join("");
        else if (ch >= " ") line += ch;
        if (line.length > MAX_LINE_BYTES) return finish(() => reject(new SecretInputAborted()));
      }
    };
    stdin.on("data", onData);
    stdin.resume();
  });
}
