/**
 * libc's open/ioctl/read/fcntl/close through bun:ffi, for the GPIO character device. Bun-only,
 * but bun:ffi is imported dynamically inside libcSyscalls(): a static "bun:" import would be
 * hoisted to the top of the Node bundle (`bun build --target=node`) and break it at start-up.
 * On Node libcSyscalls() rejects and hw/gpio-button.ts falls back to the libgpiod tools.
 *
 * Bun documents bun:ffi as experimental; everything here is a plain C call with integer and
 * buffer arguments. ioctl and fcntl are variadic in C; passing the third argument as a fixed one
 * is correct on the x86-64 and AAPCS64 (Linux arm64) calling conventions, the only targets Bun
 * has. Must never: block the event loop (line fds are switched to O_NONBLOCK before reading).
 */
import { constants as osConstants } from "node:os";
import type { GpioSyscalls } from "./gpio-chardev.ts";

const O_RDWR = 2;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const F_GETFL = 3;
const F_SETFL = 4;
const EAGAIN = 11;
const EINTR = 4;

type Ffi = typeof import("bun:ffi");

const symbols = (t: Ffi["FFIType"]) =>
  ({
    open: { args: [t.ptr, t.i32], returns: t.i32 },
    ioctl: { args: [t.i32, t.u64, t.ptr], returns: t.i32 },
    read: { args: [t.i32, t.ptr, t.u64], returns: t.i64 },
    fcntl: { args: [t.i32, t.i32, t.i32], returns: t.i32 },
    close: { args: [t.i32], returns: t.i32 },
    __errno_location: { args: [], returns: t.ptr },
  }) as const;

const ERRNO_NAMES = new Map<number, string>(
  Object.entries(osConstants.errno).map(([name, n]) => [n as number, name] as [number, string]),
);

/** A failed system call, with the errno name as `code` ("ENOENT", "EBUSY", ...). */
export class SysError extends Error {
  override readonly name = "SysError";
  constructor(
    what: string,
    readonly errno: number,
    readonly code = ERRNO_NAMES.get(errno) ?? `errno ${errno}`,
  ) {
    super(`${what}: ${code}`);
  }
}

function openLibc(ffi: Ffi) {
  let lastError: unknown;
  for (const name of ["libc.so.6", "libc.so", "libc.musl-aarch64.so.1", "libc.musl-x86_64.so.1"]) {
    try {
      return ffi.dlopen(name, symbols(ffi.FFIType));
    } catch (e) {
      lastError = e;
    }
  }
  throw new Error(`cannot load libc through bun:ffi: ${String(lastError)}`);
}

/** Real syscalls on this machine's libc. Rejects without bun:ffi (Node) or when libc does not load. */
export async function libcSyscalls(): Promise<GpioSyscalls> {
  const ffi: Ffi = await import("bun:ffi");
  const lib = openLibc(ffi).symbols;
  const errno = (): number => {
    const p = lib.__errno_location();
    return p === null ? 0 : ffi.read.i32(p, 0);
  };
  const check = (what: string, r: number): number => {
    if (r < 0) throw new SysError(what, errno());
    return r;
  };
  return {
    open(path) {
      const cpath = new TextEncoder().encode(`${path}\0`);
      return check(`open ${path}`, lib.open(cpath, O_RDWR | O_CLOEXEC));
    },
    ioctl(fd, request, buf) {
      for (;;) {
        const r = lib.ioctl(fd, BigInt(request), buf);
        if (r >= 0) return;
        const e = errno();
        if (e !== EINTR) throw new SysError(`ioctl 0x${request.toString(16)}`, e);
      }
    },
    read(fd, buf) {
      for (;;) {
        const r = Number(lib.read(fd, buf, BigInt(buf.length)));
        if (r >= 0) return r;
        const e = errno();
        if (e === EAGAIN) return null;
        if (e !== EINTR) throw new SysError("read line events", e);
      }
    },
    setNonBlocking(fd) {
      const flags = check("fcntl F_GETFL", lib.fcntl(fd, F_GETFL, 0));
      check("fcntl F_SETFL", lib.fcntl(fd, F_SETFL, flags | O_NONBLOCK));
    },
    close(fd) {
      lib.close(fd);
    },
  };
}
