/**
 * Strict CBOR for control messages: the data model, the limits and the public API.
 *
 * We use our own small codec instead of a package because the packages are lenient where it
 * matters to us (cbor-x keeps the last of duplicate keys and builds RegExp and record readers from
 * wire tags; see reference/noise-transport.md §6). The subset is chosen so that every value has
 * exactly one encoding (RFC 8949 §4.2.1 core deterministic encoding): the decoder accepts only that
 * encoding, and the encoder produces only it. Anything a peer sends that is not well-formed
 * (RFC 8949 §3), not valid (§5.3), outside the data model below or not deterministic is rejected
 * with a ProtocolError; never with another exception, and never with peer bytes in the message.
 *
 * Data model (CborValue):
 * - integers in [-2^64, 2^64-1]: a `number` when within ±(2^53-1), a `bigint` beyond. The
 *   decoder always picks this representation, so a value has one JS shape as well as one encoding.
 *   The encoder also accepts small bigints and writes -0 as 0.
 * - byte strings (Uint8Array; decoded ones are copies and never alias the input),
 *   text strings (well-formed UTF-8 on the wire, well-formed UTF-16 in JS), true, false, null;
 * - arrays; maps with text keys only, decoded into plain objects made with Object.create(null).
 *   Why text keys only: control messages are records, schema code reads `msg.field`, and one
 *   representation (an object, never sometimes a Map) keeps that code simple. Integer keys would
 *   force Map for every map or a second shape; a peer that sends them gets "cbor-malformed".
 *   A null prototype means keys like `__proto__` or `constructor` are ordinary own properties and
 *   no decoded value ever reaches or alters a prototype.
 * Rejected: floats, undefined, other simple values, tags (major type 6), indefinite lengths.
 *
 * Error codes: "cbor-limit" for a size, count or depth limit; "cbor-noncanonical" for a value in
 * the model sent in other than its deterministic encoding (non-preferred argument, indefinite
 * length, unsorted map keys); "cbor-malformed" for everything else (not well-formed, truncated,
 * trailing bytes, invalid UTF-8, duplicate keys, anything outside the data model).
 */
import { CBOR_MAX_BYTES, CBOR_MAX_DEPTH, CBOR_MAX_ITEMS } from "./limits.ts";

export type CborValue = null | boolean | number | bigint | string | Uint8Array | CborValue[] | CborMap;
export interface CborMap {
  [key: string]: CborValue;
}

export interface CborLimits {
  /** Most arrays/maps nested inside each other; a scalar at top level has depth 0. */
  maxDepth: number;
  /** Most elements in one array, or key/value pairs in one map. */
  maxItems: number;
  /** Most bytes in one encoded top-level item. */
  maxBytes: number;
}

export const DEFAULT_CBOR_LIMITS: Readonly<CborLimits> = Object.freeze({
  maxDepth: CBOR_MAX_DEPTH,
  maxItems: CBOR_MAX_ITEMS,
  maxBytes: CBOR_MAX_BYTES,
});

export { decodeCbor } from "./cbor-decode.ts";
export { encodeCbor } from "./cbor-encode.ts";
