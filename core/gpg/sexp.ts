/**
 * The S-expression subset split-gpg2 accepts in a CIPHERTEXT inquire (reference §2): parsed the
 * way splitgpg2's parse_sexpr parses (length-prefixed atoms, bare tokens [0-9A-Za-z_-]+ with one
 * optional space after, spaces after ')', nesting depth at most 20), checked as an `enc-val`,
 * and re-serialised in canonical form so the agent never sees the client's bytes as written.
 * Must never: recurse on peer input (the parser is iterative) or accept trailing garbage.
 */
import { concatBytes } from "../bytes.ts";
import { ProtocolError } from "../errors.ts";
import { sanitizeInt } from "./assuan.ts";

export type Sexp = Uint8Array | Sexp[];

export const SEXP_MAX_DEPTH = 20;

/** A CIPHERTEXT the filter refuses: a ProtocolError "gpg-sexp"; the detail is our own words. */
export class SexpError extends ProtocolError {
  constructor(detail: string) {
    super("gpg-sexp", detail);
  }
}

const TOKEN = /^[0-9a-zA-Z_-]$/;

function isTokenByte(b: number): boolean {
  return TOKEN.test(String.fromCharCode(b));
}

/** Parses one top-level list; throws SexpError on anything else. */
export function parseSexp(input: Uint8Array): Sexp[] {
  if (input.length === 0) throw new SexpError("empty");
  const top: Sexp[] = [];
  const stack: Sexp[][] = [top];
  let i = 0;
  while (i < input.length) {
    const b = input[i]!;
    const cur = stack[stack.length - 1]!;
    if (b === 0x29) {
      // ')'
      if (stack.length === 1) throw new SexpError("unbalanced )");
      stack.pop();
      i++;
      while (input[i] === 0x20) i++;
    } else if (b >= 0x30 && b <= 0x40) {
      const colon = input.indexOf(0x3a, i);
      if (colon < 0) throw new SexpError("length without ':'");
      const lenText = String.fromCharCode(...input.subarray(i, colon));
      const avail = input.length - colon - 1;
      const n = sanitizeInt(lenText, 1, avail);
      if (n === null) throw new SexpError("bad atom length");
      cur.push(input.slice(colon + 1, colon + 1 + n));
      i = colon + 1 + n;
    } else if (b === 0x28) {
      // '('
      if (stack.length > SEXP_MAX_DEPTH) throw new SexpError("too deep");
      const child: Sexp[] = [];
      cur.push(child);
      stack.push(child);
      i++;
    } else {
      let j = i;
      while (j < input.length && isTokenByte(input[j]!)) j++;
      if (j === i) throw new SexpError("invalid literal");
      cur.push(input.slice(i, j));
      if (input[j] === 0x20) j++;
      // splitgpg2 matches the rest with `(.*)\Z`, which fails on a newline.
      if (input.indexOf(0x0a, j) >= 0) throw new SexpError("newline after literal");
      i = j;
    }
  }
  if (stack.length !== 1) throw new SexpError("missing )");
  if (top.length !== 1 || !Array.isArray(top[0])) throw new SexpError("top level must be one list");
  return top[0];
}

/** Canonical form: every atom as `<len>:<bytes>`, no spaces. */
export function serializeSexp(list: Sexp[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const enc = new TextEncoder();
  const walk = (x: Sexp) => {
    if (Array.isArray(x)) {
      parts.push(enc.encode("("));
      for (const y of x) walk(y);
      parts.push(enc.encode(")"));
    } else {
      parts.push(enc.encode(`${x.length}:`), x);
    }
  };
  walk(list);
  return concatBytes(parts);
}

function atomIs(x: Sexp | undefined, text: string): boolean {
  if (x === undefined || Array.isArray(x) || x.length !== text.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== text.charCodeAt(i)) return false;
  return true;
}

/** A list of exactly [name, atom]. */
function isNamedAtom(x: Sexp | undefined, name: string): boolean {
  return Array.isArray(x) && x.length === 2 && atomIs(x[0], name) && !Array.isArray(x[1]);
}

const ENC_PARAMS: Record<string, readonly string[]> = { ecdh: ["s", "e"], rsa: ["a"], elg: ["a", "b"] };

/**
 * Checks `(enc-val (ecdh (s S) (e E)))`, `(enc-val (rsa (a A)))` or `(enc-val (elg (a A) (b B)))`
 * exactly, as split-gpg2's validate_ciphertext_sexp; returns the algorithm name.
 */
export function checkEncVal(sexp: Sexp[]): "ecdh" | "rsa" | "elg" {
  if (sexp.length !== 2 || !atomIs(sexp[0], "enc-val")) throw new SexpError("not an enc-val");
  const body = sexp[1];
  if (!Array.isArray(body) || body.length < 2) throw new SexpError("no MPIs");
  for (const alg of ["ecdh", "rsa", "elg"] as const) {
    if (!atomIs(body[0], alg)) continue;
    const names = ENC_PARAMS[alg]!;
    if (body.length - 1 !== names.length) throw new SexpError("wrong MPI count");
    names.forEach((n, k) => {
      if (!isNamedAtom(body[k + 1], n)) throw new SexpError("wrong MPI");
    });
    return alg;
  }
  throw new SexpError("unknown algorithm");
}
