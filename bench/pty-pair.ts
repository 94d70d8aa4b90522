/**
 * A pty pair for the serial figures: `socat -d -d pty,raw,echo=0 pty,raw,echo=0`, whose two
 * /dev/pts paths are parsed from its log. Bytes written to one path come out of the other.
 * stop() kills socat; `onStart` lets the caller register that for cleanup on Ctrl-C.
 */
export interface PtyPair {
  readonly a: string;
  readonly b: string;
  stop(): void;
}

export async function ptyPair(onStart: (stop: () => void) => void = () => {}): Promise<PtyPair> {
  const proc = Bun.spawn(["socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  const stop = () => proc.kill();
  onStart(stop);
  const decoder = new TextDecoder();
  let text = "";
  const reader = proc.stderr.getReader();
  const timer = setTimeout(stop, 5000);
  for (;;) {
    const paths = [...text.matchAll(/PTY is (\/dev\/\S+)/g)].map((m) => m[1]!);
    if (paths.length >= 2 && text.includes("starting data transfer")) {
      clearTimeout(timer);
      void (async () => {
        while (!(await reader.read()).done) {} // keep draining socat's log
      })();
      return { a: paths[0]!, b: paths[1]!, stop };
    }
    const r = await reader.read();
    if (r.done) {
      clearTimeout(timer);
      throw new Error(`socat did not make a pty pair: ${text.trim()}`);
    }
    text += decoder.decode(r.value, { stream: true });
  }
}
