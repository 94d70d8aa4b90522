/**
 * The faulty serial line of `bun run chaos`: fixtures/line-bridge.ts (two pty pairs joined in
 * this process, frame-aware faults) behind the same small interface as the TCP fault proxy, so
 * the scenarios of chaos/faults.ts drive either. The agent opens `a`, the host daemon `b`;
 * "up" is host -> device (b -> a). A fault hits the next whole frame (COBS segment) in that
 * direction: corrupt (its CRC fails), drop, duplicate (delivered twice: a replayed counter).
 * Truncate and cut are TCP faults: a serial line has no connection to end (an unplug is a kill).
 * Must never: change a byte outside an armed fault, or leave the ptys open (close()).
 */
import { AssertionError } from "../core/errors.ts";
import { type LineBridge, lineBridge } from "../fixtures/line-bridge.ts";
import type { ChunkFault, Direction, FaultLine } from "./tcp-fault-proxy.ts";

const LANE = { up: "ba", down: "ab" } as const;

export class SerialFaultLine implements FaultLine {
  private constructor(private readonly bridge: LineBridge) {}

  static async start(): Promise<SerialFaultLine> {
    return new SerialFaultLine(await lineBridge());
  }

  /** The tty the agent opens (`listen.tty`). */
  get agentTty(): string {
    return this.bridge.a;
  }

  /** The tty the host daemon opens (`pair --serial`). */
  get hostTty(): string {
    return this.bridge.b;
  }

  waitBytes(dir: Direction, n: number): Promise<void> {
    return this.bridge.forwarded(LANE[dir], n);
  }

  arm(dir: Direction, fault: ChunkFault): Promise<void> {
    const lane = LANE[dir];
    switch (fault) {
      case "corrupt":
        return this.bridge.corruptNext(lane);
      case "drop":
        return this.bridge.dropNext(lane);
      case "duplicate":
        return this.bridge.duplicateNext(lane);
      case "truncate":
        throw new AssertionError(
          "serial-line: truncate is a TCP fault (a serial line has no connection to end)",
        );
    }
  }

  cut(): void {
    throw new AssertionError("serial-line: cut is a TCP fault (on serial, kill a side or stall the line)");
  }

  stall(dir: Direction): () => void {
    return this.bridge.hold(LANE[dir]);
  }

  close(): Promise<void> {
    return this.bridge.close();
  }
}
