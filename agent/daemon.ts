/**
 * The agent daemon (`qubes-air-agent run`): state, policy, confirmation, the host sessions with
 * their listeners, calls from the host, and the local socket for calls into Qubes, wired
 * together. Start-up problems (config, key, policy syntax, a port in use) are ConfigError.
 * Must never: start listening before the device key, the pinned hosts and the policy loaded.
 */
import { makeResolver } from "../core/noise/suites.ts";
import { formatPublicKey } from "../core/session/key-text.ts";
import { nativeCiphers } from "../platform/native-aead.ts";
import type { Listener } from "../platform/platform.ts";
import { rankLinkSuites } from "../platform/suite-ranking.ts";
import type { TcpListener } from "../transport/tcp.ts";
import type { Config } from "./config.ts";
import { makeConfirmer } from "./confirm.ts";
import { listenTcp, listenTty, type Stoppable } from "./listen.ts";
import { serveLocalSocket } from "./local-socket.ts";
import type { Log } from "./log.ts";
import { PolicyStore } from "./policy.ts";
import { serveCall } from "./serve-call.ts";
import { SessionManager } from "./sessions.ts";
import { AgentState } from "./state.ts";
import { VERSION } from "./version.ts";

export interface Daemon {
  readonly sessions: SessionManager;
  stop(): Promise<void>;
}

export async function startDaemon(config: Config, log: Log): Promise<Daemon> {
  const state = await AgentState.open(config.stateDir);
  const publicKey = formatPublicKey(state.deviceKey.publicKey);
  log(state.keyCreated ? "device-key-created" : "device-key", {
    publicKey,
    path: `${config.stateDir}/device.key`,
  });

  const policy = new PolicyStore(config.policyDir, config.name, (why) => log("policy-error", { why }));
  const rules = await policy.check();
  const confirmer = makeConfirmer(config.confirm);
  const resolver = makeResolver(nativeCiphers());
  const suites = rankLinkSuites(resolver);
  const callDeps = { config, policy, confirmer, log };
  const sessions = new SessionManager({
    config,
    state,
    confirmer,
    log,
    resolver,
    suites,
    onOpen: (channel, meta) => serveCall(callDeps, channel, meta),
  });

  const token = await state.readToken().catch(() => undefined);
  log("starting", {
    version: VERSION,
    name: config.name,
    policyRules: rules,
    pinnedHosts: state.pinnedCount,
    pairing:
      [token ? "pair-psk" : "", config.allowCodePairing ? "pair-code" : ""].filter(Boolean).join(",") ||
      "closed",
    suites: suites.join(","),
  });

  const stops: (() => Promise<void>)[] = [];
  try {
    const socket: Listener = await serveLocalSocket(config.socket, sessions, config.name, log);
    stops.push(() => socket.close());
    if (config.listen.tcp) {
      const tcp: TcpListener = await listenTcp(
        config.listen.tcp,
        sessions,
        log,
        config.handshakeMinIntervalMs,
      );
      stops.push(() => tcp.close());
    }
    if (config.listen.tty) {
      const tty: Stoppable = listenTty(config.listen.tty, sessions, log);
      stops.push(() => tty.stop());
    }
  } catch (error) {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    throw error;
  }

  return {
    sessions,
    async stop() {
      sessions.closeAll();
      for (const stop of stops.reverse()) await stop().catch(() => {});
      await state.persisted().catch(() => {});
      log("stopped");
    },
  };
}
