/**
 * A real pty pair for tests, demo and bench: `socat` joins two ptys, so a process can open each
 * end like a USB-serial tty. Readiness comes from socat's own "PTY is /dev/pts/N" lines (no
 * polling, no sleeps). close() kills socat, which hangs up both ends.
 */
export interface PtyPair {
  readonly a: string;
  readonly b: string;
  close(): void;
}

export function hasSocat(): boolean {
  return Bun.which("socat") !== null;
}

export async function socatPtyPair(): Promise<PtyPair> {
  const proc = Bun.spawn(["socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  const reader = proc.stderr.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let paths: string[] = [];
  while (paths.length < 2) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`socat exited before creating two ptys: ${text.trim()}`);
    text += decoder.decode(value, { stream: true });
    paths = [...text.matchAll(/PTY is (\/dev\/pts\/\d+)/g)].map((m) => m[1]!);
  }
  // Keep draining stderr so socat never blocks on a full pipe.
  void (async () => {
    while (!(await reader.read()).done) {}
  })().catch(() => {});
  return { a: paths[0]!, b: paths[1]!, close: () => proc.kill() };
}
