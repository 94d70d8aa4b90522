/**
 * The agent daemon (`qubes-air-agent run`): state, policy, the audit log, the ONE confirmation
 * manager (policy asks, code pairings and split-GPG share it: one prompt at a time), the
 * built-in services (files, split-GPG, audit fetch), the host sessions with their listeners,
 * calls from the host, and the local socket for calls into Qubes, wired together. Start-up
 * problems (config, key, policy syntax, a port in use) are ConfigError.
 * Must never: start listening before the device key, the pinned hosts, the policy and the audit
 * log are loaded, or before a killed copy's temporary files are swept from QubesIncoming.
 */
import { join } from "node:path";
import { ConfigError } from "../core/errors.ts";
import { makeResolver } from "../core/noise/suites.ts";
import { Service } from "../core/qrexec/services.ts";
import { systemClock } from "../core/session/duplex.ts";
import { formatPublicKey } from "../core/session/key-text.ts";
import { platform } from "../platform/index.ts";
import { nativeCiphers } from "../platform/native-aead.ts";
import { nativeDh } from "../platform/native-dh.ts";
import type { Listener } from "../platform/platform.ts";
import { rankLinkSuites } from "../platform/suite-ranking.ts";
import type { TcpListener } from "../transport/tcp.ts";
import type { Config } from "./config.ts";
import { Announcer } from "./confirmation/announcer.ts";
import { ApproverGrants } from "./confirmation/approver-grants.ts";
import { AgentConfirmer } from "./confirmation/confirmer.ts";
import { openConfirmation } from "./confirmation/inputs.ts";
import { ConfirmationManager } from "./confirmation/manager.ts";
import { openScreens } from "./confirmation/screen.ts";
import { KeyLock } from "./keylock/key-lock.ts";
import { DhBudget, KnownAddresses } from "./link/dh-budget.ts";
import { listenTcp, listenTty, type Stoppable } from "./link/listen.ts";
import { serveLocalSocket } from "./link/outgoing-calls.ts";
import { RefusalLog } from "./link/refusal-log.ts";
import { SessionManager } from "./link/sessions.ts";
import { AgentState } from "./link/state.ts";
import type { Log } from "./log.ts";
import { AuditLog } from "./services/audit/log.ts";
import { BUILTINS, type Builtin } from "./services/builtins.ts";
import { splitGpgBuiltins } from "./services/gpg-builtins.ts";
import { removeStaleParts } from "./services/incoming-cleanup.ts";
import { PolicyStore } from "./services/policy.ts";
import { serveCall } from "./services/serve-call.ts";
import { DeviceSshAgent } from "./services/ssh/device-agent.ts";
import { sshDirOf } from "./services/ssh/keysetup.ts";
import { splitSshBuiltins } from "./services/ssh/ssh-builtin.ts";
import { VERSION } from "./version.ts";

export interface Daemon {
  readonly sessions: SessionManager;
  stop(): Promise<void>;
}

/** Between a denial and the next prompt for the same client (manager.ts "cooldown"). */
export const CONFIRM_COOLDOWN_MS = 5_000;

export async function startDaemon(config: Config, log: Log): Promise<Daemon> {
  const state = await AgentState.open(config.stateDir);
  const publicKey = formatPublicKey(state.deviceKey.publicKey);
  log(state.keyCreated ? "device-key-created" : "device-key", {
    publicKey,
    path: `${config.stateDir}/device.key`,
  });

  const policy = new PolicyStore(config.policyDir, config.name, (why) => log("policy-error", { why }));
  const rules = await policy.check();
  const audit = await AuditLog.open(config.auditLog).catch((e: NodeJS.ErrnoException) => {
    throw new ConfigError(`cannot open the audit log ${config.auditLog} (${e.code ?? e.message})`);
  });
  const stops: (() => Promise<void>)[] = [() => audit.close()];
  const announcer = new Announcer(config.name, log);
  const screens = config.display ? openScreens(config.display, config.name, log) : null;
  let confirmer: AgentConfirmer;
  let builtins: ReadonlyMap<string, Builtin>;
  let keyLock: KeyLock | null = null;
  try {
    const { input, indicator } = await openConfirmation(config, log);
    // Grants last only while the agent runs; each use asks the policy again (approver-grants.ts).
    const grants = new ApproverGrants(
      () => platform.monotonicMs(),
      async (approver, client) => (await policy.decide(approver, Service.Approve, client)).action !== "deny",
    );
    const manager = new ConfirmationManager({
      grants,
      onEvent: (e) => {
        announcer.announce(e);
        screens?.onEvent(e);
      },
      input,
      indicator,
      timeoutMs: config.confirmTimeoutSeconds * 1000,
      cooldownMs: CONFIRM_COOLDOWN_MS,
      windowMs: config.approvalWindowSeconds * 1000,
      conflictWindowMs: config.confirmConflictWindowSeconds * 1000,
      log,
    });
    stops.push(async () => {
      manager.close();
      input.close();
      indicator.close();
    });
    log("confirm", {
      kind: config.confirm.kind,
      input: input.description,
      timeout_s: config.confirmTimeoutSeconds,
      window_s: config.approvalWindowSeconds,
    });
    confirmer = new AgentConfirmer(manager, audit, log);
    keyLock = await KeyLock.open({ gnupgHome: config.gnupgHome, config: config.keyLock, audit, log });
    const lock = keyLock;
    if (lock) stops.push(() => lock.close());
    // The device's ssh-agent starts on the first qubes.SshAgent call, and stops with the agent.
    const sshAgent = new DeviceSshAgent(sshDirOf(config.stateDir), log);
    stops.push(() => sshAgent.stop());
    builtins = new Map([
      ...BUILTINS,
      ...splitGpgBuiltins({
        gnupgHome: config.gnupgHome,
        confirm: manager,
        audit,
        log,
        grants,
        keyLock,
        deviceName: config.name,
      }),
      ...splitSshBuiltins({ device: sshAgent, confirm: manager, audit, log }),
    ]);
    log("split-gpg", {
      gnupgHome: config.gnupgHome,
      audit: config.auditLog,
      auditRecords: audit.lastSeq,
      keyLock: keyLock ? keyLock.current : "none (the key has no PIN)",
    });
  } catch (error) {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    throw error;
  }
  const resolver = makeResolver(nativeCiphers(), nativeDh());
  const suites = rankLinkSuites(resolver);
  const callDeps = { config, policy, confirmer, builtins, log };
  // One handshake budget and one refusal count for the whole agent (agent/link/dh-budget.ts).
  const known = new KnownAddresses(undefined, state.hostAddresses, (a) => state.rememberHostAddress(a));
  const budget = new DhBudget(known, () => platform.monotonicMs());
  const refusals = new RefusalLog(log, { clock: systemClock, budget });
  const sessions = new SessionManager({
    config,
    state,
    confirmer,
    log,
    resolver,
    suites,
    refusals,
    onOpen: (channel, meta, session) => serveCall(callDeps, channel, meta, session),
    onLinkChange: (anyUp) => keyLock?.linkChanged(anyUp),
  });
  announcer.attach((meta) => sessions.current()?.vchan.open(meta, "announce") ?? null);

  // Before listening: no copy is in progress, so every temporary file left is a killed copy's.
  const incoming = join(config.incomingDir, "QubesIncoming");
  const swept = await removeStaleParts(incoming);
  log("incoming-cleanup", { dir: incoming, removed: swept.removed, failed: swept.failed || undefined });

  const token = await state.readToken().catch(() => undefined);
  // Start-up garbage (config parsing, the suite ranking's sealed samples) is not kept resident.
  platform.releaseGarbage();
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

  try {
    const socket: Listener = await serveLocalSocket(config.socket, sessions, config.name, log);
    stops.push(() => socket.close());
    if (config.listen.tcp) {
      const tcp: TcpListener = await listenTcp(
        config.listen.tcp,
        sessions,
        log,
        config.handshakeMinIntervalMs,
        { budget, refusals },
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
      refusals.flush();
      await state.persisted().catch(() => {});
      log("stopped");
    },
  };
}
