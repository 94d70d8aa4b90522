/**
 * A man-in-the-middle TCP proxy for the fault suite: the host daemon is paired with the proxy's
 * address, the proxy forwards to the agent (whose port may change when it restarts: setTarget),
 * and a fault is armed on the next chunk in one direction:
 *   cut        both sockets of every connection destroyed (RST-like, no FIN)
 *   stall      forwarding in one direction paused for ms (TCP backpressure builds), then resumed
 *   corrupt    one bit of the next chunk flipped
 *   truncate   the first half of the next chunk forwarded, then both ends closed (FIN)
 *   duplicate  the next chunk forwarded twice
 *   drop       the next chunk not forwarded; later chunks are
 * "up" is host -> device (daemon to agent), "down" is device -> host.
 * Faults trigger on bytes seen (waitBytes), never on time, so a run is reproducible under load.
 * Must never: alter a byte it was not told to, or keep a socket open after close().
 */
import * as net from "node:net";

export type Direction = "up" | "down";
export type ChunkFault = "corrupt" | "truncate" | "duplicate" | "drop";

interface Pipe {
  readonly from: net.Socket;
  readonly to: net.Socket;
  /** Paused by a stall (forwarding resumes when it ends, unless backpressure still holds). */
  stalled: boolean;
  backpressure: boolean;
}

interface Conn {
  readonly up: Pipe;
  readonly down: Pipe;
}

/** What the fault scenarios (chaos/faults.ts) drive: this proxy, or the serial line (serial-line.ts). */
export interface FaultLine {
  /** Resolves once `n` more bytes have passed in `dir` (counted from now). */
  waitBytes(dir: Direction, n: number): Promise<void>;
  /** Arms a fault on the next chunk (TCP) or frame (serial) in `dir`; resolves once applied. */
  arm(dir: Direction, fault: ChunkFault): Promise<void>;
  /** Every connection ended at once (TCP only). */
  cut(): void;
  /** Stops forwarding in `dir` until the returned call. */
  stall(dir: Direction): () => void;
  close(): Promise<void>;
}

export class TcpFaultProxy implements FaultLine {
  readonly bytes: Record<Direction, number> = { up: 0, down: 0 };
  private readonly conns = new Set<Conn>();
  private readonly armed: Record<Direction, ChunkFault | null> = { up: null, down: null };
  private readonly stalls: Record<Direction, boolean> = { up: false, down: false };
  private readonly waiters: { dir: Direction; at: number; resolve: () => void }[] = [];
  private readonly fired: { dir: Direction; fault: ChunkFault; resolve: () => void }[] = [];
  /** Connections accepted so far (a reconnect is a new one). */
  accepted = 0;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private target: number,
  ) {}

  static async start(targetPort: number): Promise<TcpFaultProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
    });
    const proxy = new TcpFaultProxy(server, (server.address() as net.AddressInfo).port, targetPort);
    server.on("connection", (s) => proxy.accept(s));
    return proxy;
  }

  /** Where new connections go (the agent listens on a new port after a restart). */
  setTarget(port: number): void {
    this.target = port;
  }

  get connections(): number {
    return this.conns.size;
  }

  /** Resolves once `n` more bytes have passed in `dir` (counted from now). */
  waitBytes(dir: Direction, n: number): Promise<void> {
    const at = this.bytes[dir] + n;
    return new Promise((resolve) => this.waiters.push({ dir, at, resolve }));
  }

  /** Arms a fault on the next chunk in `dir`; resolves when it has been applied. */
  arm(dir: Direction, fault: ChunkFault): Promise<void> {
    this.armed[dir] = fault;
    return new Promise((resolve) => this.fired.push({ dir, fault, resolve }));
  }

  /** Every open connection destroyed at once, both sides. */
  cut(): void {
    for (const c of [...this.conns]) this.destroy(c);
  }

  /** Pauses forwarding in `dir` on every connection (new ones too) until the returned call. */
  stall(dir: Direction): () => void {
    this.stalls[dir] = true;
    for (const c of this.conns) c[dir].stalled = true;
    for (const c of this.conns) c[dir].from.pause();
    return () => {
      this.stalls[dir] = false;
      for (const c of this.conns) {
        c[dir].stalled = false;
        if (!c[dir].backpressure) c[dir].from.resume();
      }
    };
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    this.accepted++;
    const server = net.connect({ host: "127.0.0.1", port: this.target });
    const conn: Conn = {
      up: { from: client, to: server, stalled: this.stalls.up, backpressure: false },
      down: { from: server, to: client, stalled: this.stalls.down, backpressure: false },
    };
    this.conns.add(conn);
    for (const dir of ["up", "down"] as const) {
      const p = conn[dir];
      if (p.stalled) p.from.pause();
      p.from.on("data", (chunk: Buffer) => this.forward(conn, dir, chunk));
      p.from.on("end", () => p.to.end());
      p.from.on("error", () => this.destroy(conn));
      p.from.on("close", () => this.destroy(conn));
      p.to.on("drain", () => {
        p.backpressure = false;
        if (!p.stalled) p.from.resume();
      });
    }
  }

  private forward(conn: Conn, dir: Direction, chunk: Buffer): void {
    const p = conn[dir];
    this.bytes[dir] += chunk.length;
    const fault = this.armed[dir];
    let out: Buffer[] = [chunk];
    let closeAfter = false;
    if (fault) {
      this.armed[dir] = null;
      if (fault === "corrupt") {
        const copy = Buffer.from(chunk);
        const at = Math.floor(copy.length / 2);
        copy[at] = copy[at]! ^ 0x10;
        out = [copy];
      } else if (fault === "truncate") {
        out = [chunk.subarray(0, Math.floor(chunk.length / 2))];
        closeAfter = true;
      } else if (fault === "duplicate") {
        out = [chunk, chunk];
      } else out = [];
      for (const f of this.fired.filter((x) => x.dir === dir && x.fault === fault)) {
        this.fired.splice(this.fired.indexOf(f), 1);
        queueMicrotask(f.resolve);
      }
    }
    for (const b of out) {
      if (!p.to.destroyed && !p.to.write(b)) {
        p.backpressure = true;
        p.from.pause();
      }
    }
    if (closeAfter) {
      p.to.end();
      p.from.end();
    }
    for (const w of this.waiters.filter((x) => x.dir === dir && this.bytes[dir] >= x.at)) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve();
    }
  }

  private destroy(c: Conn): void {
    if (!this.conns.delete(c)) return;
    c.up.from.destroy();
    c.down.from.destroy();
  }
}
