/**
 * Errors. Every failure kbypass reports carries a stable `code`:
 * - system call failures: the errno name (`EACCES`, `ECONNREFUSED`, …) plus `errno` and `syscall`, as Node does;
 * - argument errors: Node's own `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` / `ERR_OUT_OF_RANGE`;
 * - kbypass's own conditions: `ERR_KBYPASS_*` (listed in docs/ARCHITECTURE.md, Errors).
 */

/** An error with a stable `code`. */
export class KbypassError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'KbypassError';
  }
}

/** A system call failed; `code` is the errno name. */
export class SystemError extends KbypassError {
  readonly errno: number;
  readonly syscall: string;
  constructor(code: string, errno: number, syscall: string, message?: string) {
    super(code, message ?? `${syscall} failed: ${code}`);
    this.errno = errno;
    this.syscall = syscall;
    this.name = 'SystemError';
  }
}

type CodedTypeError = TypeError & { code: string };
type CodedRangeError = RangeError & { code: string };

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return `function ${(value as { name?: string }).name || '<anonymous>'}`;
  if (typeof value === 'object') {
    const ctor = (value as { constructor?: { name?: string } }).constructor;
    return ctor?.name ? `an instance of ${ctor.name}` : typeof value;
  }
  let shown = String(value);
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  if (typeof value === 'string') shown = `'${shown}'`;
  return `type ${typeof value} (${shown})`;
}

/** Node's ERR_INVALID_ARG_TYPE. */
export function invalidArgType(name: string, expected: string, actual: unknown): CodedTypeError {
  const e = new TypeError(`The "${name}" argument must be ${expected}. Received ${describe(actual)}`) as CodedTypeError;
  e.code = 'ERR_INVALID_ARG_TYPE';
  return e;
}

/** Node's ERR_INVALID_ARG_VALUE. */
export function invalidArgValue(name: string, value: unknown, reason: string): CodedTypeError {
  const e = new TypeError(`The argument '${name}' ${reason}. Received ${describe(value)}`) as CodedTypeError;
  e.code = 'ERR_INVALID_ARG_VALUE';
  return e;
}

/** Node's ERR_OUT_OF_RANGE. */
export function outOfRange(name: string, range: string, value: unknown): CodedRangeError {
  const e = new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${String(value)}`) as CodedRangeError;
  e.code = 'ERR_OUT_OF_RANGE';
  return e;
}
