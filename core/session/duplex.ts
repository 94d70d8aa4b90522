/**
 * What the session needs from a byte stream and a clock. Structural, so that transport/'s
 * ByteStream fits without core/ importing it (core/ imports nothing outside core/).
 */

export interface Duplex {
  /** Next non-empty chunk, or null at EOF. */
  read(): Promise<Uint8Array | null>;
  /** Resolves when the stream can take more (backpressure). */
  write(data: Uint8Array): Promise<void>;
  close(): void;
}

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Calls fn after ms; returns a cancel function. */
  setTimer(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(ms, fn) {
    const handle = setTimeout(fn, ms);
    // A pending keepalive or rekey timer must not keep a finished process alive.
    (handle as { unref?: () => void }).unref?.();
    return () => clearTimeout(handle);
  },
};
