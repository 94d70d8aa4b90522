/**
 * Handshake patterns (Noise spec rev 34 §7.4 one-way, §7.5 interactive, §7.6 deferred) and the
 * psk modifier (§9.2), parsed from a protocol name such as `Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s`.
 * The table is data: each message is a list of tokens, sent alternately from the initiator.
 * Must never: accept a name it cannot represent exactly (unknown names return null).
 */

export type Token = "e" | "s" | "ee" | "es" | "se" | "ss" | "psk";

export interface HandshakePattern {
  readonly name: string;
  /** Pre-messages (§7.1): tokens the initiator's / responder's peer knows in advance. */
  readonly initiatorPre: readonly Token[];
  readonly responderPre: readonly Token[];
  /** Message i goes initiator -> responder when i is even (interactive) or always (one-way). */
  readonly messages: readonly (readonly Token[])[];
  readonly oneWay: boolean;
}

// Written as in the spec: "-> s | <- s ... -> e, es | <- e, ee". Pre-messages before "...".
const BASE_PATTERNS: Record<string, string> = {
  // One-way (§7.4)
  N: "<- s ... -> e, es",
  K: "-> s | <- s ... -> e, es, ss",
  X: "<- s ... -> e, es, s, ss",
  // Interactive fundamental (§7.5)
  NN: "-> e | <- e, ee",
  NK: "<- s ... -> e, es | <- e, ee",
  NX: "-> e | <- e, ee, s, es",
  KN: "-> s ... -> e | <- e, ee, se",
  KK: "-> s | <- s ... -> e, es, ss | <- e, ee, se",
  KX: "-> s ... -> e | <- e, ee, se, s, es",
  XN: "-> e | <- e, ee | -> s, se",
  XK: "<- s ... -> e, es | <- e, ee | -> s, se",
  XX: "-> e | <- e, ee, s, es | -> s, se",
  IN: "-> e, s | <- e, ee, se",
  IK: "<- s ... -> e, es, s, ss | <- e, ee, se",
  IX: "-> e, s | <- e, ee, se, s, es",
  // Deferred (§7.6)
  NK1: "<- s ... -> e | <- e, ee, es",
  NX1: "-> e | <- e, ee, s | -> es",
  X1N: "-> e | <- e, ee | -> s | <- se",
  X1K: "<- s ... -> e, es | <- e, ee | -> s | <- se",
  XK1: "<- s ... -> e | <- e, ee, es | -> s, se",
  X1K1: "<- s ... -> e | <- e, ee, es | -> s | <- se",
  X1X: "-> e | <- e, ee, s, es | -> s | <- se",
  XX1: "-> e | <- e, ee, s | -> es, s, se",
  X1X1: "-> e | <- e, ee, s | -> es, s | <- se",
  K1N: "-> s ... -> e | <- e, ee | -> se",
  K1K: "-> s | <- s ... -> e, es | <- e, ee | -> se",
  KK1: "-> s | <- s ... -> e | <- e, ee, se, es",
  K1K1: "-> s | <- s ... -> e | <- e, ee, es | -> se",
  K1X: "-> s ... -> e | <- e, ee, s, es | -> se",
  KX1: "-> s ... -> e | <- e, ee, se, s | -> es",
  K1X1: "-> s ... -> e | <- e, ee, s | -> se, es",
  I1N: "-> e, s | <- e, ee | -> se",
  I1K: "<- s ... -> e, es, s | <- e, ee | -> se",
  IK1: "<- s ... -> e, s | <- e, ee, se, es",
  I1K1: "<- s ... -> e, s | <- e, ee, es | -> se",
  I1X: "-> e, s | <- e, ee, s, es | -> se",
  IX1: "-> e, s | <- e, ee, se, s | -> es",
  I1X1: "-> e, s | <- e, ee, s | -> se, es",
};

function tokens(list: string): Token[] {
  return list
    .split(",")
    .map((t) => t.trim())
    .filter((t) => t.length > 0) as Token[];
}

function parseBase(name: string, text: string): HandshakePattern {
  const [pre, main] = text.includes("...") ? (text.split("...") as [string, string]) : ["", text];
  let initiatorPre: Token[] = [];
  let responderPre: Token[] = [];
  for (const line of pre.split("|").map((l) => l.trim())) {
    if (line.startsWith("->")) initiatorPre = tokens(line.slice(2));
    else if (line.startsWith("<-")) responderPre = tokens(line.slice(2));
  }
  const messages = main.split("|").map((l) => tokens(l.trim().slice(2)));
  return { name, initiatorPre, responderPre, messages, oneWay: name.length === 1 };
}

/**
 * `XX`, `XXpsk3`, `IKpsk2`, `XXpsk0+psk2` (snow's combined modifiers). psk0 goes at the start of
 * the first message; pskN (N >= 1) at the end of message N (§9.2).
 */
export function parsePattern(fullName: string): HandshakePattern | null {
  const match = /^([A-Z1]+?)((?:psk\d)(?:\+psk\d)*)?$/.exec(fullName);
  if (!match) return null;
  const baseText = BASE_PATTERNS[match[1]!];
  if (baseText === undefined) return null;
  const base = parseBase(match[1]!, baseText);
  if (!match[2]) return { ...base, name: fullName };
  const messages = base.messages.map((m) => [...m]);
  for (const modifier of match[2].split("+")) {
    const position = Number(modifier.slice(3));
    if (position === 0) messages[0]!.unshift("psk");
    else if (position <= messages.length) messages[position - 1]!.push("psk");
    else return null;
  }
  return { ...base, name: fullName, messages };
}

export interface ProtocolName {
  readonly pattern: HandshakePattern;
  readonly dh: string;
  readonly cipher: string;
  readonly hash: string;
}

/** `Noise_<pattern>_<dh>_<cipher>_<hash>` (§8). Returns null for anything we do not implement. */
export function parseProtocolName(name: string): ProtocolName | null {
  const parts = name.split("_");
  if (parts.length !== 5 || parts[0] !== "Noise") return null;
  const pattern = parsePattern(parts[1]!);
  if (!pattern) return null;
  return { pattern, dh: parts[2]!, cipher: parts[3]!, hash: parts[4]! };
}

export function isPskPattern(p: HandshakePattern): boolean {
  return p.messages.some((m) => m.includes("psk"));
}
