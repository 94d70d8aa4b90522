/**
 * Unattended signing approved by another qube (docs/device-policy.md "Unattended signing";
 * docs/threat-model.md "Approver qubes"): what approver qubes have granted through
 * qubesair.Approve, and the one question the ConfirmationManager asks before it prompts: does a
 * grant stand in for the press for this request? A grant names one client and is
 *
 *   a count    the client's next N signatures (a new count replaces the old one), or
 *   a digest   one signature of exactly that digest (split-gpg2's SETHASH, shown on the prompt;
 *              for split-gpg v1, the digest of the data signed),
 *
 * and ends at its time bound (APPROVE_LIMITS, core/qrexec/services.ts) or on `revoke`. Nothing
 * is granted by default: a grant exists only after a qubesair.Approve call that the device's
 * policy allowed for that approver and client, and each use is checked against the policy again
 * (a removed rule ends its grants at once). State is in memory only: a restart ends every grant.
 * Must never: let a grant cover decryption, another client, another service than split-GPG,
 * more uses than granted, a digest it was not given, or a time after its bound.
 */
import type { ApproveRequest } from "../../core/qrexec/approve-request.ts";
import { APPROVE_LIMITS, Service } from "../../core/qrexec/services.ts";
import type { ConfirmationRequest } from "./manager.ts";

/** The operations a grant may stand in for: signatures only, never a decryption. */
const SIGNING = new Set(["PKSIGN", "sign", "sign+encrypt"]);
const SERVICES = new Set<string>([Service.Gpg, Service.Gpg2]);

interface Grants {
  count: { left: number; until: number } | null;
  digests: { algo: string; hex: string; until: number }[];
}

/**
 * A digest grant covers a split-gpg2 PKSIGN of exactly that digest, or a v1 signature whose
 * data has exactly that digest.
 */
function matches(g: { algo: string; hex: string }, r: ConfirmationRequest): boolean {
  if (r.digest !== undefined && r.hashAlgo === g.algo && r.digest === g.hex) return true;
  return r.dataDigests?.get(g.algo) === g.hex;
}

export type GrantOutcome =
  | { readonly ok: true; readonly text: string }
  | { readonly ok: false; readonly why: "self" | "too-many-digests"; readonly text: string };

/** May `approver` still approve for `client` (the device's policy, asked again at each use)? */
export type StillAllowed = (approver: string, client: string) => Promise<boolean>;

export class ApproverGrants {
  /** approver -> client -> grants. */
  private readonly byApprover = new Map<string, Map<string, Grants>>();

  constructor(
    private readonly clock: () => number,
    private readonly stillAllowed: StillAllowed,
  ) {}

  /** Why grant() would refuse this now, or null (checked before the grant is audited). */
  refusal(approver: string, client: string, r: ApproveRequest): Extract<GrantOutcome, { ok: false }> | null {
    if (approver === client)
      return { ok: false, why: "self", text: "a qube cannot approve its own signatures" };
    const g = this.byApprover.get(approver)?.get(client);
    if (g) this.expire(g, this.clock());
    if (r.kind === "digest" && g && g.digests.length >= APPROVE_LIMITS.maxDigests)
      return {
        ok: false,
        why: "too-many-digests",
        text: `${APPROVE_LIMITS.maxDigests} digest grants for ${client} are still unused`,
      };
    return null;
  }

  /** Records what qubesair.Approve asked (after policy allowed it and the audit log has it). */
  grant(approver: string, client: string, r: ApproveRequest): GrantOutcome {
    const refused = this.refusal(approver, client, r);
    if (refused) return refused;
    const now = this.clock();
    const clients = this.byApprover.get(approver) ?? new Map<string, Grants>();
    this.byApprover.set(approver, clients);
    const g = clients.get(client) ?? { count: null, digests: [] };
    clients.set(client, g);
    this.expire(g, now);
    if (r.kind === "revoke") {
      clients.delete(client);
      return { ok: true, text: `every grant for ${client} revoked` };
    }
    const until = now + r.seconds * 1000;
    if (r.kind === "count") {
      g.count = { left: r.count, until };
      return { ok: true, text: `the next ${r.count} signature(s) of ${client}, for ${r.seconds} s` };
    }
    g.digests.push({ algo: r.algo, hex: r.hex, until });
    return {
      ok: true,
      text: `one signature of ${client} over ${r.algo} ${r.hex.slice(0, 8)}…, for ${r.seconds} s`,
    };
  }

  /**
   * The approver whose grant covers this request, the grant used up by one; null when none does
   * (then the press decides). A digest grant is preferred over a count: it is the narrower one.
   */
  async take(r: ConfirmationRequest): Promise<string | null> {
    if (!SIGNING.has(r.operation) || !SERVICES.has(r.service)) return null;
    for (const [approver, clients] of this.byApprover) {
      const g = clients.get(r.client);
      if (!g) continue;
      this.expire(g, this.clock());
      const d = g.digests.findIndex((x) => matches(x, r));
      if (d < 0 && g.count === null) continue;
      // Asked while nothing is consumed yet; the check awaits, so re-find after it.
      if (!(await this.stillAllowed(approver, r.client))) {
        clients.delete(r.client);
        continue;
      }
      this.expire(g, this.clock());
      const at = g.digests.findIndex((x) => matches(x, r));
      if (at >= 0) {
        g.digests.splice(at, 1);
        return approver;
      }
      if (g.count !== null) {
        g.count.left -= 1;
        if (g.count.left === 0) g.count = null;
        return approver;
      }
    }
    return null;
  }

  /** The algorithms of the digest grants waiting for `client`, from any approver. */
  digestAlgos(client: string): string[] {
    const algos = new Set<string>();
    for (const clients of this.byApprover.values()) {
      const g = clients.get(client);
      if (!g) continue;
      this.expire(g, this.clock());
      for (const d of g.digests) algos.add(d.algo);
    }
    return [...algos];
  }

  /** What is left for a client from each approver (for tests and the log). */
  remaining(client: string): { approver: string; count: number; digests: number }[] {
    const out: { approver: string; count: number; digests: number }[] = [];
    for (const [approver, clients] of this.byApprover) {
      const g = clients.get(client);
      if (!g) continue;
      this.expire(g, this.clock());
      out.push({ approver, count: g.count?.left ?? 0, digests: g.digests.length });
    }
    return out;
  }

  private expire(g: Grants, now: number): void {
    if (g.count !== null && g.count.until <= now) g.count = null;
    g.digests = g.digests.filter((d) => d.until > now);
  }
}
