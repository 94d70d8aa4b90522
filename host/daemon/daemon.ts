/**
 * The sys-remote daemon: one RemoteLink per paired remote qube (host/remote-link.ts), hotplug
 * (host/hotplug.ts), calls from devices into Qubes (host/incoming.ts), and the unix socket the
 * CLI and the relay use (host/control-server.ts). It owns the registry: every change (pair,
 * unpair, last seen) is written by it, atomically.
 *
 * Start-up: the state dir and the host key are created when missing (key mode 0600); a bad
 * registry or key is a ConfigError before anything listens.
 * Must never: create or chmod a directory that already exists (a --socket in /tmp must not
 * change /tmp), or run two links for one name.
 */
import { dirname } from "node:path";
import { ConfigError } from "../../core/errors.ts";
import { makeResolver } from "../../core/noise/suites.ts";
import { formatPublicKey } from "../../core/session/key-text.ts";
import type { CborMap } from "../../core/wire/cbor.ts";
import { type Listener, platform } from "../../platform/index.ts";
import { generateKeyFile, loadKeyPair } from "../../platform/key-file.ts";
import { nativeCiphers } from "../../platform/native-aead.ts";
import { nativeDh } from "../../platform/native-dh.ts";
import { rankLinkSuites } from "../../platform/suite-ranking.ts";
import type { HostPaths } from "../paths.ts";
import { registerRemoteVm, removeRemoteVm } from "../register-remote.ts";
import { HOST_VERSION } from "../version.ts";
import { type ControlApi, serveConnection } from "./control-server.ts";
import { Enroller } from "./enroller.ts";
import { byIdMatches, Hotplug, list } from "./hotplug.ts";
import { handleIncoming } from "./incoming.ts";
import type { LinkContext } from "./link-context.ts";
import { desktopNotifier, findNotifier, type Notify } from "./notify.ts";
import { type PairConversation, type PairRequest, pair } from "./pairing.ts";
import { type PendingPrompt, PromptBoard } from "./prompts.ts";
import { describeTransport, loadRegistry, nowIso, type RemoteEntry, saveRegistry } from "./registry.ts";
import { RemoteLink } from "./remote-link.ts";
import { TimestampSource } from "./timestamps.ts";

export interface DaemonOptions {
  readonly paths: HostPaths;
  readonly byIdDir: string;
  readonly netDir: string;
  readonly qrexecClient: string;
  readonly keepaliveMs: number;
  readonly backoff: { readonly minMs: number; readonly maxMs: number };
  readonly hotplugIntervalMs: number;
  /**
   * Register each newly paired remote in dom0 through the dom0 service qubesair.RegisterRemote
   * (host/register-remote.ts); dom0 makes this qube its relayvm. Off for those who use the Salt pillar or type it in dom0.
   */
  readonly register: boolean;
  /** This qube's name in dom0 (the RemoteVMs' relayvm), for messages: dom0 takes it from qrexec. */
  readonly selfName: string;
  readonly log: (message: string) => void;
  /** Desktop notifications; default notify-send when this qube has a GUI (notify.ts). */
  readonly notify?: Notify;
}

/** No enrolment ever talks to the person: a code pairing is never started for one. */
const NO_CODE: PairConversation = { confirmCode: async () => false };

export class Daemon {
  private readonly entries = new Map<string, RemoteEntry>();
  private readonly links = new Map<string, RemoteLink>();
  private readonly pairing = new Set<string>();
  private listener: Listener | null = null;
  private hotplug: Hotplug | null = null;
  private saving: Promise<unknown> = Promise.resolve();
  private ctx: LinkContext | null = null;
  private enroller: Enroller | null = null;
  private prompts: PromptBoard | null = null;

  constructor(private readonly o: DaemonOptions) {}

  async start(): Promise<void> {
    const { paths, log } = this.o;
    await ensureDir(paths.stateDir);
    if ((await platform.stat(paths.hostKey)) === null) {
      await generateKeyFile(paths.hostKey);
      log(`created the host key ${paths.hostKey}`);
    }
    const staticKey = await loadKeyPair(paths.hostKey, {
      keygenCommand: "remove it and restart the daemon; or",
    });
    for (const entry of (await loadRegistry(paths.registry)).remotes) this.entries.set(entry.name, entry);
    let notify = this.o.notify;
    if (!notify) {
      const program = await findNotifier(process.env);
      log(
        program
          ? `notifications: ${program}`
          : "notifications: none (no GUI in this qube); the journal has every prompt",
      );
      notify = desktopNotifier(program, log);
    }
    const prompts = new PromptBoard({ log, notify });
    this.prompts = prompts;
    const resolver = makeResolver(nativeCiphers(), nativeDh());
    this.ctx = {
      staticKey,
      resolver,
      suites: rankLinkSuites(resolver),
      version: HOST_VERSION,
      timestamps: new TimestampSource(paths.timestamp),
      byIdDir: this.o.byIdDir,
      keepaliveMs: this.o.keepaliveMs,
      backoff: this.o.backoff,
      onIncoming: (remote, channel, meta) =>
        handleIncoming(
          { qrexecClient: this.o.qrexecClient, log, announced: (r, a) => prompts.announced(r, a) },
          remote,
          channel,
          meta,
        ),
      onSeen: (remote, atMs) => this.seen(remote, atMs),
      log,
    };
    await ensureDir(dirname(paths.socket));
    this.listener = await platform.unixListen(paths.socket, (s) => void serveConnection(s, this.api), {
      mode: 0o600,
    });
    for (const entry of this.entries.values()) this.addLink(entry);
    this.hotplug = new Hotplug(
      { byIdDir: this.o.byIdDir, netDir: this.o.netDir, intervalMs: this.o.hotplugIntervalMs },
      {
        serial: (name, present) => {
          for (const link of this.links.values()) {
            const t = link.entry.transport;
            if ("tcp" in t) continue;
            const byId = "byId" in t.serial ? t.serial.byId : null;
            if (!byIdMatches(name, byId, link.entry.usbSerial)) continue;
            log(`${link.name}: serial device ${name} ${present ? "appeared" : "vanished"}`);
            if (present) link.wake();
            else link.unplugged();
          }
          if (present) this.enroller?.serialAppeared(name);
          else this.enroller?.serialGone(name);
        },
        net: (iface, mac, present) => {
          for (const link of this.links.values()) {
            if (mac === null || link.entry.mac !== mac) continue;
            log(`${link.name}: network interface ${iface} ${present ? "appeared" : "vanished"}`);
            if (present) link.wake();
            else link.unplugged();
          }
          if (present) this.enroller?.netAppeared(mac);
          else this.enroller?.netGone(mac);
        },
      },
    );
    await this.hotplug.start();
    this.enroller = new Enroller({
      path: paths.enrolments,
      log,
      isPaired: (name) => this.entries.has(name) || this.pairing.has(name),
      pair: (req) => this.pairAndAdopt(req, NO_CODE).then(() => {}),
    });
    await this.enroller.start(await list(this.o.byIdDir));
    log(
      `qubes-air daemon ${HOST_VERSION}: ${this.entries.size} remote qube(s), ` +
        `${this.enroller.pendingCount} pending enrolment(s), listening on ${paths.socket}`,
    );
  }

  async stop(): Promise<void> {
    this.hotplug?.stop();
    await this.enroller?.stop();
    await this.listener?.close();
    await Promise.all([...this.links.values()].map((l) => l.stop()));
    await this.saving;
  }

  /** Pairs, keeps the session, and registers the RemoteVM in dom0 when that is on. */
  private async pairAndAdopt(req: PairRequest, talk: PairConversation): Promise<CborMap> {
    if (this.entries.has(req.name) || this.pairing.has(req.name)) {
      throw new ConfigError(`${req.name} is already paired: unpair it first (qubes-air unpair ${req.name})`);
    }
    this.pairing.add(req.name);
    let paired: Awaited<ReturnType<typeof pair>>;
    try {
      paired = await pair(this.ctx!, req, talk);
    } finally {
      this.pairing.delete(req.name);
    }
    this.entries.set(req.name, paired.entry);
    await this.persist();
    this.addLink(paired.entry, { connected: paired.connected, stream: paired.stream });
    this.o.log(`${req.name}: paired (${describeTransport(req.transport)}, zone ${req.zone})`);
    const registered = await this.registerInDom0(req.name, req.label ?? "gray");
    return {
      name: req.name,
      agentKey: formatPublicKey(paired.entry.agentKey),
      agentVersion: paired.connected.session.peerVersion,
      registered: registered === null,
      ...(registered ? { registerError: registered } : {}),
    };
  }

  /** null when the RemoteVM was made, else why not (the pairing stands either way). */
  private async registerInDom0(name: string, label: string): Promise<string | null> {
    if (!this.o.register) return "registration is off (--no-register)";
    try {
      const done = await registerRemoteVm({ name, label }, { client: this.o.qrexecClient });
      this.o.log(`${name}: RemoteVM ${done} in dom0 (relayvm ${this.o.selfName})`);
      return null;
    } catch (error) {
      const why = error instanceof ConfigError ? error.message : String(error);
      this.o.log(`${name}: not registered in dom0: ${why}`);
      return why;
    }
  }

  private addLink(entry: RemoteEntry, adopted?: Parameters<RemoteLink["start"]>[0]): void {
    const link = new RemoteLink(entry, this.ctx!);
    this.links.set(entry.name, link);
    link.start(adopted);
  }

  private seen(name: string, atMs: number): void {
    const entry = this.entries.get(name);
    if (!entry) return;
    const updated = { ...entry, lastSeen: nowIso(atMs) };
    this.entries.set(name, updated);
    const link = this.links.get(name);
    if (link) link.entry = updated;
    void this.persist().catch((e) => this.o.log(`cannot write ${this.o.paths.registry}: ${e}`));
  }

  private persist(): Promise<void> {
    const write = this.saving.then(() =>
      saveRegistry(this.o.paths.registry, { remotes: [...this.entries.values()] }),
    );
    this.saving = write.catch(() => {});
    return write;
  }

  private readonly api: ControlApi = {
    list: () => [...this.links.values()].map(view),
    prompts: () => this.prompts?.list().map(promptView) ?? [],
    watch: (w) => this.prompts?.watch(w) ?? null,
    status: () => ({
      version: HOST_VERSION,
      pid: process.pid,
      socket: this.o.paths.socket,
      stateDir: this.o.paths.stateDir,
      remotes: this.links.size,
      up: [...this.links.values()].filter((l) => l.isUp).length,
    }),
    link: (name) => this.links.get(name),
    pair: (req, talk) => this.pairAndAdopt(req, talk),
    enrol: (m) => this.enroller!.record(m),
    unpair: async (name, removeQube) => {
      if (!this.entries.has(name)) throw new ConfigError(`no remote qube named ${name} is paired`);
      // The qube first: if dom0 refuses, nothing changed here and the command can be run again.
      if (removeQube) await removeRemoteVm(name, { client: this.o.qrexecClient });
      const link = this.links.get(name);
      this.entries.delete(name);
      this.links.delete(name);
      await this.persist();
      await link?.stop();
      this.o.log(`${name}: unpaired${removeQube ? "; its RemoteVM removed in dom0" : ""}`);
    },
    log: (message) => this.o.log(message),
  };
}

export function view(link: RemoteLink): CborMap {
  const e = link.entry;
  return {
    name: e.name,
    zone: e.zone,
    transport: describeTransport(e.transport),
    state: link.state,
    rttUs: link.rttMs === null ? null : Math.round(link.rttMs * 1000),
    agentVersion: link.peerVersion,
    lastSeen: link.lastSeenMs === null ? null : Math.round(link.lastSeenMs),
    pairedAt: e.pairedAt,
    agentKey: formatPublicKey(e.agentKey),
  };
}

export function promptView(p: PendingPrompt): CborMap {
  const a = p.announcement;
  return {
    remote: p.remote,
    code: a.code,
    id: a.id,
    client: a.client,
    service: a.service,
    operation: a.operation,
    key: a.key,
    detail: a.detail,
    since: Math.round(p.sinceMs),
  };
}

async function ensureDir(dir: string): Promise<void> {
  if ((await platform.stat(dir)) === null) await platform.mkdirp(dir, 0o700);
}
