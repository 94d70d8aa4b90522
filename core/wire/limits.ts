/**
 * Every wire size, count and time limit of the link, in one place, each with its reason.
 * Decoders check against these before they allocate. Nothing here is configurable by a peer.
 * Sources: Noise spec rev 34 §3/§13; DESIGN.md "The link, layer by layer".
 */

// --- Noise (spec §3, §13) ---
/** Every Noise message, tag included, is at most 65535 bytes (spec §3). */
export const NOISE_MAX_MESSAGE = 65535;
/** ChaChaPoly and AESGCM tags are 16 bytes. */
export const AEAD_TAG_BYTES = 16;
/** Largest plaintext one Noise transport message can carry. */
export const NOISE_MAX_PLAINTEXT = NOISE_MAX_MESSAGE - AEAD_TAG_BYTES;
/** Handshake payloads carry a few small fields only; a cap stops pre-auth memory abuse. */
export const HANDSHAKE_PAYLOAD_MAX = 1024;
/** 2^64-1 is reserved by the spec (§5.1); we stop far earlier and re-handshake (see REKEY_*). */
export const NONCE_REFUSE_AT = 2n ** 60n;

// --- TCP framing: u16 BE length + one Noise message (spec §13) ---
export const TCP_LENGTH_PREFIX_BYTES = 2;

// --- Serial framing: COBS(type | epoch | counter u64 BE | body | CRC-32C) + 0x00 ---
/** type(1) + epoch(1) + counter(8). */
export const SERIAL_HEADER_BYTES = 10;
export const SERIAL_CRC_BYTES = 4;
/**
 * Largest body (Noise message) in one serial frame: the Noise limit. Nothing is resent on serial
 * (a lost frame ends the session), so small frames buy nothing, while each frame costs a write
 * and a wake-up: 16 KiB frames moved 43 MB/s through a pty pair, full-size ones 50 (bench/).
 */
export const SERIAL_MAX_BODY = NOISE_MAX_MESSAGE;
/** Largest unencoded frame; the receiver drops anything longer and resyncs at the next 0x00. */
export const SERIAL_MAX_FRAME = SERIAL_HEADER_BYTES + SERIAL_MAX_BODY + SERIAL_CRC_BYTES;
/** Counters accepted out of order behind the highest seen (RFC 6479 style sliding bitmap). */
export const REPLAY_WINDOW_BITS = 2048;

// --- Strict CBOR for control messages (DESIGN.md §4) ---
/** Control messages are small maps; deeper nesting is an attack, not a message. */
export const CBOR_MAX_DEPTH = 16;
/** Items in one array or map. */
export const CBOR_MAX_ITEMS = 1024;
/** A control message never needs more than one Noise plaintext. */
export const CBOR_MAX_BYTES = NOISE_MAX_PLAINTEXT;

// --- vchan (channel multiplexer) ---
/** Open channels per session: 256 concurrent qrexec calls plus headroom, with a memory bound. */
export const VCHAN_MAX_CHANNELS = 512;
/** Per-channel, per-direction receive window: the most a peer may send before we grant credit. */
export const VCHAN_WINDOW_BYTES = 256 * 1024;
/** Record kind(1) + vchan type(1) + channel id(4). */
export const VCHAN_DATA_HEADER_BYTES = 6;
/** Largest data chunk: one chunk always fits one Noise message. */
export const VCHAN_MAX_CHUNK = NOISE_MAX_PLAINTEXT - VCHAN_DATA_HEADER_BYTES;

// --- Session timers and rekey (noise-transport.md §1.3, §7.5; WireGuard constants) ---
/** A handshake that has not finished in this time is abandoned. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Minimum spacing of accepted handshake initiations from one peer (WireGuard: 20 ms). */
export const HANDSHAKE_MIN_INTERVAL_MS = 20;

// --- TCP admission before authentication (agent/link/half-open.ts) ---
/**
 * An accepted connection must deliver its cleartext offer (about 40 bytes, sent right after
 * connect) within this time. One RTT is enough; 2 s also covers one retransmission of the
 * offer at TCP's initial 1 s RTO (RFC 6298), used when the SYN itself had to be resent.
 */
export const OFFER_TIMEOUT_MS = 2000;
/**
 * Unauthenticated handshakes from one source address at once. A host runs one attempt at a
 * time; 2 leaves room for its new attempt while the agent has not yet seen the old one close.
 * A third connection from the address evicts that address's oldest, so the newest always runs.
 */
export const HALF_OPEN_PER_ADDRESS = 2;
/**
 * Handshakes not yet authenticated, all addresses together. Each holds a socket and a few KB,
 * and no crypto runs before IK message 1; 64 stays far below the usual 1024-descriptor limit.
 * When full, a new connection evicts the oldest entry of the address holding the most, so
 * filling the table takes 32 addresses; entries from known host addresses go last, so a host
 * reconnecting from its address is never evicted by a flood from others (agent/link/half-open.ts).
 */
export const HALF_OPEN_MAX = 64;
/**
 * X25519 operations per second the device spends on handshakes from peers that have not proved
 * a pinned key, all addresses together (agent/link/dh-budget.ts): an IK message 1 costs 2 (es,
 * ss), an XX message 2 and 3 cost 4. Native X25519 took ~60 µs on a (busy) desktop core here;
 * even at 1 ms (a slow ARM core, not measured) 200/s is 20% of one core, whatever the number of
 * source addresses, and it still answers 100 stranger IK attempts a second. Beyond it an attempt
 * is refused (handshake-rate) before any DH runs.
 */
export const HANDSHAKE_DH_PER_SECOND = 200;
/** The budget's bucket: a burst of 25 IK attempts at once (hosts reconnecting after a reboot). */
export const HANDSHAKE_DH_BURST = 50;
/**
 * A second bucket only addresses from which a pinned host completed a reconnect may draw on (a
 * flood from other addresses cannot empty it): 10 IK attempts at once, 5 a second after. An
 * off-path attacker cannot use such an address: TCP needs it to see the SYN-ACK.
 */
export const HANDSHAKE_DH_RESERVED_PER_SECOND = 10;
export const HANDSHAKE_DH_RESERVED_BURST = 20;
/**
 * Addresses remembered as a pinned host's (in memory, most recent first): their connections get
 * the reserved DH bucket and are evicted from a full half-open table last. A device has a few
 * hosts; 16 covers each on a few networks without letting the list grow.
 */
export const KNOWN_HOST_ADDRESSES_MAX = 16;
/**
 * Refused handshakes logged one line each per REFUSALS_REPORT_MS (enough to diagnose a broken
 * host); the rest are counted, and one summary line per window gives the counts: a flood must
 * not fill the log (one line per attempt would be a disk-filling attack of its own).
 */
export const REFUSALS_LOGGED_PER_WINDOW = 8;
export const REFUSALS_REPORT_MS = 10_000;
/** Fresh handshake after this much time on one key... */
export const REKEY_AFTER_MS = 10 * 60_000;
/** ...or after this many messages in either direction, whichever comes first. */
export const REKEY_AFTER_MESSAGES = 2 ** 32;
/** A ping when the link has been idle this long; RTT is measured from it. */
export const KEEPALIVE_INTERVAL_MS = 10_000;
/** No message at all for this long means the peer is gone. */
export const KEEPALIVE_TIMEOUT_MS = 30_000;
/**
 * A PING written and then nothing authenticated back (no PONG, no other record) for this long
 * ends the session (ping-unanswered). The keepalive timeout alone cannot catch a TCP stream
 * whose length field was flipped: the receiver waits for bytes that are not coming while the
 * sender, still hearing the peer's own PINGs, thinks all is well, for KEEPALIVE_TIMEOUT_MS. A
 * working peer answers in one round trip (milliseconds; ~150 ms p99 beside bulk copies on a
 * busy machine, chaos/); 2 s leaves room for a slow path and still recovers within seconds.
 */
export const PING_ANSWER_TIMEOUT_MS = 2000;
/**
 * A record sent and nothing at all received since for this long sends a PING (at most one
 * outstanding), so that a peer that stopped hearing us is found out by PING_ANSWER_TIMEOUT_MS
 * instead of at the next idle keepalive (KEEPALIVE_INTERVAL_MS). A call whose callee is quiet
 * costs one ~40-byte PING per quiet period.
 */
export const PING_PROBE_AFTER_MS = 500;
/**
 * A timer that fires more than this after its time means this process was not running
 * (SIGSTOP, a paused VM, a suspended laptop; a busy machine delays timers by tens of ms): the
 * silence was ours and says nothing about the peer, so the session pings afresh and waits
 * PING_ANSWER_TIMEOUT_MS again instead of ending.
 */
export const TIMER_LATE_MS = 1000;
/**
 * A ping deadline that passed is confirmed once more after this long before the session ends:
 * after a pause, timers run before the reads that were waiting, so the answer may be in the
 * socket unread; this gives the read loop its turn first.
 */
export const PING_VERDICT_CONFIRM_MS = 50;
/**
 * PONGs not yet written at once; further PINGs go unanswered. An honest peer has one or two
 * pings out; one that pings and never reads would otherwise queue answers without bound.
 */
export const PONGS_IN_FLIGHT_MAX = 8;
/**
 * Records handed to the link and not yet written, per session. Each channel waits for its own
 * data write, so an honest peer that reads stays near one per open channel plus a few controls;
 * past this the peer is not reading what it asks for (the session ends with flow-control)
 * rather than our answers queueing in memory.
 */
export const SENDS_IN_FLIGHT_MAX = 4 * VCHAN_MAX_CHANNELS;

// --- Pairing by 6-digit code (core/session/pairing-code.ts; docs/threat-model-pairing.md) ---
/** Each side's pairing nonce: 256 random bits, so the commitment BLAKE2s(nonce) hides it. */
export const PAIR_NONCE_BYTES = 32;
/**
 * The pairing id: BLAKE2s of the pairing handshake's hash, cut to 128 bits. Both ends store it
 * with the pinned key and every IK message 1 carries it (encrypted), so a message 1 recorded
 * under an earlier pairing of the same keys is refused after a re-pairing. 128 bits: ids of
 * independent pairings never collide (2^-64 after 2^32 pairings of one key pair).
 */
export const PAIRING_ID_BYTES = 16;
/** The code shown on both ends: 6 decimal digits, so one guess in 10^6 per attempt. */
export const PAIR_CODE_DIGITS = 6;
/**
 * Failed code pairings (a refused code, or a handshake abandoned after the device's reveal)
 * before the device locks code pairing: the only limit on an attacker's guesses, so small.
 */
export const PAIR_CODE_MAX_FAILURES = 3;
/**
 * How long code pairing stays locked after PAIR_CODE_MAX_FAILURES failures: with 3 guesses per
 * 15 minutes an attacker wins with probability at most 3 * 96 / 10^6 ~ 2.9e-4 per day.
 */
export const PAIR_CODE_LOCK_MS = 15 * 60_000;

// --- Serial line timing (a point-to-point line: probing it is cheap, waiting on it is not) ---
/**
 * Keepalive period on serial: a PING when nothing was sent for this long. A PING record is ~40
 * bytes on the line: 80 B/s, nothing even at 115200 baud, and it is what lets the far end notice
 * a dead line within SERIAL_KEEPALIVE_TIMEOUT_MS instead of 30 s (issue 9, point 2).
 */
export const SERIAL_KEEPALIVE_INTERVAL_MS = 500;
/**
 * Nothing received on a serial line (no frame, and no line bytes either: a slow UART may take
 * seconds to carry one 64 KiB frame) for this long means the session is dead: three missed
 * keepalives. Recovery within 2 s of a fault needs the verdict well before then.
 */
export const SERIAL_KEEPALIVE_TIMEOUT_MS = 1500;
/**
 * A serial handshake is a few small frames on a dedicated line (milliseconds, even at 115200
 * baud), but the device must put the IK timestamp on disk before it answers (an fsync on an SD
 * card, slow on a busy machine): 3 s for the whole attempt. Lost frames do not wait for this
 * deadline: they are repeated (SERIAL_HANDSHAKE_RESEND_MS).
 */
export const SERIAL_HANDSHAKE_TIMEOUT_MS = 3000;
/**
 * While the initiator waits for an answer it repeats its last handshake frame this often (core/
 * session/serial-record-link.ts): a lost or corrupted handshake frame, or a line that starts
 * working again, costs at most this long instead of a whole attempt.
 */
export const SERIAL_HANDSHAKE_RESEND_MS = 400;
/**
 * Longest reconnect delay after a line fault on serial (link-lost, keepalive-timeout, reset,
 * write-timeout, handshake-timeout): one attempt is two small frames on a line nobody else uses,
 * so backing off further only delays recovery. Other failures (a refused key) back off as usual.
 */
export const SERIAL_RECONNECT_MAX_MS = 400;
/**
 * One write(2) of a frame (at most 64 KiB) on a USB or pty line finishes in milliseconds; not
 * finishing in this time means the far end stopped reading, and the stream fails (the session
 * ends, the caller gets 125). With a configured baud rate the time to clock the frame out is
 * added (transport/serial.ts). The keepalive normally ends a stalled session first; this is the
 * backstop for a line where frames still arrive but ours do not leave.
 */
export const SERIAL_WRITE_DEADLINE_MS = 5000;
/**
 * How long a serial link that ends on a fault tries to write its cleartext RESET frame (the
 * write may be stuck behind a stalled one) before it closes the line anyway.
 */
export const SERIAL_RESET_WRITE_MS = 250;
/**
 * A responder without a session answers stray transport frames (its peer still thinks a session
 * is up: the responder restarted) with a "no session here" RESET at most this often: one is
 * enough, and garbage on the line must not make it write without bound.
 */
export const SERIAL_NO_SESSION_EVERY_MS = 400;
