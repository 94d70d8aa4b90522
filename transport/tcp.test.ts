import { afterEach, expect, test } from "bun:test";
import { ConfigError } from "../core/errors.ts";
import { platform } from "../platform/index.ts";
import { lacking } from "../test/helpers/requires.ts";
import { streamContract } from "../test/helpers/stream-contract.ts";
import { type TcpListener, tcpConnect, tcpListen } from "./tcp.ts";
import { type ByteStream, TransportError } from "./transport.ts";

let listeners: TcpListener[] = [];
afterEach(async () => {
  await Promise.all(listeners.map((l) => l.close()));
  listeners = [];
});

/** A connected pair over loopback: [client, the server's side]. */
async function tcpPair(): Promise<[ByteStream, ByteStream]> {
  let accepted!: (s: ByteStream) => void;
  const server = new Promise<ByteStream>((r) => {
    accepted = r;
  });
  const l = await tcpListen("127.0.0.1", 0, (s) => accepted(s));
  listeners.push(l);
  const client = await tcpConnect("127.0.0.1", l.port);
  return [client, await server];
}

streamContract({
  name: "tcp loopback",
  pair: tcpPair,
  halfClose: true,
  peerCloseEof: true,
  // Loopback socket buffers autotune to a few MB each way, plus our 1 MiB read-ahead.
  stallBound: 64 * 1024 * 1024,
});

test("port 0 binds a free port and reports it", async () => {
  const l = await tcpListen("127.0.0.1", 0, (s) => s.close());
  listeners.push(l);
  expect(l.port).toBeGreaterThan(0);
  const c = await tcpConnect("127.0.0.1", l.port);
  expect(c.description).toBe(`tcp 127.0.0.1:${l.port}`);
  expect(await c.read()).toBeNull(); // the server closed it
  c.close();
});

test("a port in use is an operator fault (ConfigError with the fix)", async () => {
  const l = await tcpListen("127.0.0.1", 0, (s) => s.close());
  listeners.push(l);
  const e = await tcpListen("127.0.0.1", l.port, () => {}).catch((x) => x);
  expect(e).toBeInstanceOf(ConfigError);
  expect(e.message).toContain("another address or port");
});

test("connecting to a closed port rejects with TransportError ECONNREFUSED", async () => {
  const l = await tcpListen("127.0.0.1", 0, () => {});
  const port = l.port;
  await l.close();
  const e = await tcpConnect("127.0.0.1", port).catch((x) => x);
  expect(e).toBeInstanceOf(TransportError);
  expect(e.code).toBe("ECONNREFUSED");
});

const hasPython = Bun.which("python3") !== null;

test.skipIf(lacking(hasPython ? null : "python3"))(
  "connect gives up after timeoutMs (a listener whose backlog is full)",
  async () => {
    // A listener that never accepts, with backlog 0: once its queue holds one connection the
    // kernel drops further SYNs, so the next connect can only time out.
    const py = await platform.spawn(
      [
        "python3",
        "-c",
        "import socket,sys\ns=socket.socket();s.bind(('127.0.0.1',0));s.listen(0)\nprint(s.getsockname()[1],flush=True);sys.stdin.read()",
      ],
      { stdin: "pipe", stdout: "pipe", stderr: "inherit" },
    );
    try {
      const port = Number(new TextDecoder().decode((await py.stdout!.read())!));
      const codes: string[] = [];
      for (let i = 0; i < 4 && !codes.includes("ETIMEDOUT"); i++) {
        const t0 = performance.now();
        const r = await tcpConnect("127.0.0.1", port, { timeoutMs: 200 }).catch((e) => e);
        if (r instanceof TransportError) {
          codes.push(r.code);
          expect(performance.now() - t0).toBeLessThan(2000);
        } else r.close();
      }
      expect(codes).toContain("ETIMEDOUT");
    } finally {
      py.kill("SIGKILL");
      await py.exited;
    }
  },
);

test("a reset by the peer surfaces as TransportError or EOF, never a raw error", async () => {
  const [a, b] = await tcpPair();
  await a.write(new Uint8Array(100_000));
  b.close(); // unread bytes at b: the kernel answers with RST
  const r = await a.read().catch((e) => e);
  expect(r === null || r instanceof TransportError).toBe(true);
  a.close();
  await a.closed;
});
