/** The three kinds of failure: their types, codes and the text they carry. */
import { describe, expect, test } from "bun:test";
import { AssertionError, assert, ConfigError, isProtocolError, ProtocolError } from "./errors.ts";

describe("ProtocolError", () => {
  test("carries its fixed code, and its detail as a field and in the message", () => {
    const e = new ProtocolError("schema", "empty path in the request");
    expect(e).toBeInstanceOf(Error);
    expect(e.code).toBe("schema");
    expect(e.detail).toBe("empty path in the request");
    expect(e.message).toBe("schema: empty path in the request");
  });

  test("without a detail the message is the code", () => {
    const e = new ProtocolError("decrypt");
    expect(e.detail).toBeUndefined();
    expect(e.message).toBe("decrypt");
  });

  test("isProtocolError matches by class and code, never by name", () => {
    const lookalike = Object.assign(new Error("decrypt"), { name: "ProtocolError", code: "decrypt" });
    expect(isProtocolError(new ProtocolError("decrypt"))).toBe(true);
    expect(isProtocolError(new ProtocolError("decrypt"), "decrypt")).toBe(true);
    expect(isProtocolError(new ProtocolError("decrypt"), "replay")).toBe(false);
    expect(isProtocolError(lookalike)).toBe(false);
  });
});

describe("ConfigError and assert", () => {
  test("ConfigError is an operator fault with an exit code", () => {
    const e = new ConfigError("fix the file", 3);
    expect([e.message, e.exitCode, e instanceof ProtocolError]).toEqual(["fix the file", 3, false]);
  });

  test("assert throws AssertionError only when the condition is false", () => {
    expect(() => assert(true)).not.toThrow();
    expect(() => assert(0, "a bug")).toThrow(AssertionError);
  });
});
