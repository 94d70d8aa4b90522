/**
 * IK reconnect handshake time in one warm process (as between two long-running daemons): both
 * ends over a real TCP loopback connection, core/session/establish.ts as the daemons use it. The
 * clock runs from connectAsInitiator() to both ends established (offer/choice + IK, 2 round
 * trips); TCP connect is excluded. Both ends share one thread, so their CPU time adds up.
 */

import { type LinkSuiteName, makeResolver } from "../core/noise/suites.ts";
import { systemClock } from "../core/session/duplex.ts";
import { connectAsInitiator, connectAsResponder } from "../core/session/establish.ts";
import { generateStaticKeyPair } from "../core/session/key-text.ts";
import { TcpRecordLink } from "../core/session/tcp-record-link.ts";
import { nativeCiphers } from "../platform/native-aead.ts";
import { nativeDh } from "../platform/native-dh.ts";
import { tcpConnect, tcpListen } from "../transport/tcp.ts";
import type { ByteStream } from "../transport/transport.ts";

export async function warmHandshakes(
  count: number,
  warmup: number,
  suite: LinkSuiteName = "25519_AESGCM_BLAKE2s",
): Promise<number[]> {
  const resolver = makeResolver(nativeCiphers(), nativeDh());
  const host = generateStaticKeyPair();
  const agent = generateStaticKeyPair();
  const same = (x: Uint8Array, y: Uint8Array) => Buffer.from(x).equals(Buffer.from(y));
  let lastTs = -1n;
  let ts = BigInt(Date.now()) * 1000n;
  const accepted: ByteStream[] = [];
  let onAccept: (() => void) | null = null;
  const listener = await tcpListen("127.0.0.1", 0, (s) => {
    accepted.push(s);
    onAccept?.();
  });
  const samples: number[] = [];
  try {
    for (let i = 0; i < warmup + count; i++) {
      const client = await tcpConnect("127.0.0.1", listener.port);
      if (accepted.length === 0) await new Promise<void>((r) => (onAccept = r));
      onAccept = null;
      const server = accepted.shift()!;
      const tuning = { clock: systemClock, onOpen: () => {} };
      const t0 = performance.now();
      const [h, g] = await Promise.all([
        connectAsInitiator(
          {
            link: new TcpRecordLink(client),
            resolver,
            staticKey: host,
            version: "bench-host",
            suites: [suite],
            mode: "reconnect",
            responderKey: agent.publicKey,
            timestamp: () => ++ts,
          },
          tuning,
        ),
        connectAsResponder(
          {
            link: new TcpRecordLink(server),
            resolver,
            staticKey: agent,
            version: "bench-agent",
            suites: [suite],
            peers: {
              isPinned: (k) => same(k, host.publicKey),
              acceptTimestamp(_k, t) {
                if (t <= lastTs) return false;
                lastTs = t;
                return true;
              },
            },
            pairing: {},
          },
          tuning,
        ),
      ]);
      const ms = performance.now() - t0;
      if (i >= warmup) samples.push(ms);
      h.session.close();
      await Promise.all([h.session.closed, g.session.closed]);
    }
  } finally {
    await listener.close();
  }
  return samples;
}
