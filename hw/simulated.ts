/**
 * Stand-ins for the hardware in tests: a button pressed from test code, a button pressed by
 * writing "approve"/"deny" lines to a unix socket (end-to-end tests with real agent processes),
 * and an indicator that records what it was asked to show. Same contract as the real ones:
 * presses that arrive while no wait is pending never count.
 * Must never: be configured on a real device (the agent's config refuses it outside tests).
 */
import { type Listener, platform } from "../platform/index.ts";
import type { ApprovalInput, Indicator, IndicatorPattern, Verdict } from "./input.ts";
import { PressQueue } from "./press-queue.ts";

export type PressKind = "short" | "long" | Verdict;

const toVerdict = (kind: PressKind): Verdict => (kind === "short" || kind === "approve" ? "approve" : "deny");

export class SimulatedButton implements ApprovalInput {
  readonly description = "simulated";
  private readonly queue = new PressQueue("simulated button");

  /** Presses the button; returns whether a pending wait took it (false: ignored). */
  press(kind: PressKind): boolean {
    return this.queue.deliver(toVerdict(kind));
  }

  /** Presses that arrived while nobody waited. */
  get ignoredPresses(): number {
    return this.queue.ignored;
  }

  get waiting(): boolean {
    return this.queue.waiting;
  }

  waitForVerdict(signal: AbortSignal): Promise<Verdict> {
    return this.queue.wait(signal);
  }

  close(): void {
    this.queue.closed = true;
  }
}

/**
 * A button on a unix socket: each line "approve" or "deny" (also "short"/"long") from any client
 * is one press. The client gets "taken\n" or "ignored\n" back per line, so a test knows whether
 * its press arrived while a wait was pending.
 */
export class SocketButton implements ApprovalInput {
  readonly description: string;
  private readonly queue: PressQueue;

  private constructor(
    readonly path: string,
    private readonly listener: Listener,
    queue: PressQueue,
  ) {
    this.description = `simulated socket ${path}`;
    this.queue = queue;
  }

  static async listen(path: string): Promise<SocketButton> {
    const queue = new PressQueue(`simulated socket ${path}`);
    const listener = await platform.unixListen(path, (stream) => {
      void (async () => {
        const decoder = new TextDecoder();
        let text = "";
        try {
          for (let c = await stream.read(); c; c = await stream.read()) {
            text += decoder.decode(c, { stream: true });
            if (text.length > 1024) break;
            let nl = text.indexOf("\n");
            for (; nl >= 0; nl = text.indexOf("\n")) {
              const word = text.slice(0, nl).trim();
              text = text.slice(nl + 1);
              if (!["approve", "deny", "short", "long"].includes(word)) {
                await stream.write(new TextEncoder().encode("unknown\n"));
                continue;
              }
              const taken = queue.deliver(toVerdict(word as PressKind));
              await stream.write(new TextEncoder().encode(taken ? "taken\n" : "ignored\n"));
            }
          }
        } catch {
          // A client that goes away mid-line is not our problem.
        } finally {
          stream.close();
        }
      })();
    });
    return new SocketButton(path, listener, queue);
  }

  get waiting(): boolean {
    return this.queue.waiting;
  }

  waitForVerdict(signal: AbortSignal): Promise<Verdict> {
    return this.queue.wait(signal);
  }

  close(): void {
    this.queue.closed = true;
    void this.listener.close();
  }
}

/** Records every pattern shown, for assertions. */
export class RecordingIndicator implements Indicator {
  readonly description = "recording";
  readonly shown: IndicatorPattern[] = [];
  closed = false;

  get current(): IndicatorPattern | undefined {
    return this.shown.at(-1);
  }

  show(pattern: IndicatorPattern): void {
    this.shown.push(pattern);
  }

  close(): void {
    this.closed = true;
  }
}
