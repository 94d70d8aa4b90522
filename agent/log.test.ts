/** The agent log's line format and errorCode(): codes matched by class, never by name or message. */
import { describe, expect, test } from "bun:test";
import { ProtocolError } from "../core/errors.ts";
import { QfileError } from "../core/qrexec/qfile.ts";
import { ChannelResetError } from "../core/vchan/channel.ts";
import { ResetReason } from "../core/vchan/messages.ts";
import { TransportError } from "../transport/transport.ts";
import { errorCode, makeLog } from "./log.ts";

describe("errorCode", () => {
  test("a ProtocolError (and a subclass) gives its fixed code", () => {
    expect(errorCode(new ProtocolError("handshake-psk", "token already used"))).toBe("handshake-psk");
    expect(errorCode(new QfileError(5, null))).toBe("frame-malformed");
  });

  test("channel resets and transport failures get their own codes", () => {
    expect(errorCode(new ChannelResetError(ResetReason.ERROR))).toBe("channel-reset");
    expect(errorCode(new TransportError("tcp: reset", "ECONNRESET"))).toBe("transport-ECONNRESET");
    expect(errorCode(new TransportError("closed"))).toBe("transport-io");
  });

  test("anything else gives its class name, never its message", () => {
    expect(errorCode(new TypeError("peer said: <script>"))).toBe("TypeError");
    expect(errorCode("a string")).toBe("error");
    expect(errorCode(null)).toBe("error");
  });

  test("a lookalike with a borrowed name is not taken for a ProtocolError", () => {
    const lookalike = Object.assign(new Error("x"), { name: "ProtocolError", code: "peer-chosen" });
    expect(errorCode(lookalike)).toBe("ProtocolError");
    expect(errorCode({ name: "ChannelResetError" })).toBe("error");
  });
});

test("makeLog quotes values that need it", () => {
  const lines: string[] = [];
  makeLog((l) => lines.push(l))("refused", { via: "tcp", code: "a b", n: 1, skip: undefined });
  expect(lines).toEqual(['qubes-air-agent: refused via=tcp code="a b" n=1\n']);
});
