/**
 * Command-line helpers shared by `kbypass capture` and `kbypass pktgen`: parsing the options with node:util's
 * `parseArgs`, checking their values, and the text of errors.
 *
 * Every bad argument is a {@link KbypassError} with code {@link ERR_USAGE} and a message that names the option and
 * quotes what was given; the tools print it and exit 2.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { KbypassError } from '../errors';

/** The error code of every bad-usage error of `kbypass capture` and `kbypass pktgen`. */
export const ERR_USAGE = 'ERR_KBYPASS_USAGE';

/** The longest duration accepted (`capture -G`, `pktgen -d`), in seconds: what setTimeout can wait (2^31 - 1 ms). */
export const MAX_DURATION_S = 2_147_483;

/** A bad-usage error ({@link ERR_USAGE}) with this message. */
export function usageError(message: string): KbypassError {
  return new KbypassError(ERR_USAGE, message);
}

/** The option declarations that {@link parseOptions} takes (`parseArgs`'s `options`). */
export type OptionsConfig = NonNullable<ParseArgsConfig['options']>;

/** The values {@link parseOptions} returns for `options`: `parseArgs`'s `values`, typed by the declarations. */
export type OptionValues<O extends OptionsConfig> =
  ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: false; strict: true; options: O }>>['values'];

/**
 * Parses `argv` strictly against `options`, no positional arguments allowed, and returns the values.
 * @throws KbypassError {@link ERR_USAGE} for an unknown option, a missing value, a value given to a boolean
 * option or a positional argument, with the first line of `parseArgs`'s message.
 */
export function parseOptions<O extends OptionsConfig>(argv: readonly string[], options: O): OptionValues<O> {
  try {
    return parseArgs({ args: [...argv], allowPositionals: false, strict: true, options }).values;
  } catch (e) {
    throw usageError((e as Error).message.split('\n')[0] ?? String(e));
  }
}

/**
 * A whole number from `min` to `max` (decimal digits only: no sign, point or exponent) for option `name`.
 * @throws KbypassError {@link ERR_USAGE} when `s` is not a whole number or is out of range.
 */
export function wholeNumber(name: string, s: string, min: number, max: number): number {
  const n = /^\d+$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n)) throw usageError(`${name} takes a whole number, got '${s}'`);
  if (n < min || n > max) throw usageError(`${name} must be from ${min} to ${max}, got ${n}`);
  return n;
}

/** A plain decimal number: digits with an optional fraction, or a fraction alone (`2`, `2.`, `2.5`, `.5`). */
const DECIMAL = /^(\d+(\.\d*)?|\.\d+)$/;
/** {@link DECIMAL}, optionally followed by an exponent (`2e5`, `1.5E3`). */
const DECIMAL_EXP = /^(\d+(\.\d*)?|\.\d+)(e\d+)?$/i;

/**
 * A number above 0 and at most `max`, counted in `unit` (named in the error message), for option `name`.
 * `allowExponent` accepts an exponent too (`2e5`); without it only plain decimals are (`2`, `2.5`, `.5`).
 * @throws KbypassError {@link ERR_USAGE} when `s` is not such a number.
 */
export function positiveNumber(name: string, s: string, max: number, unit: string, allowExponent = true): number {
  const n = (allowExponent ? DECIMAL_EXP : DECIMAL).test(s) ? Number(s) : NaN;
  if (!Number.isFinite(n) || n <= 0 || n > max) throw usageError(`${name} takes a number of ${unit} above 0 and at most ${max}, got '${s}'`);
  return n;
}

/**
 * One of `choices` for option `name`; the error message lists them in the order given.
 * @throws KbypassError {@link ERR_USAGE} when `s` is none of them.
 */
export function oneOf<T extends string>(name: string, s: string, choices: readonly T[]): T {
  if ((choices as readonly string[]).includes(s)) return s as T;
  const list = choices.length > 1 ? `${choices.slice(0, -1).join(', ')} or ${choices[choices.length - 1]}` : `${choices[0]}`;
  throw usageError(`${name} must be ${list}, got '${s}'`);
}

/**
 * An error's text for a message: `CODE: message` when it has a string `code` that its message does not already
 * start with, else its message (or `String(e)` when it has none).
 */
export function errorText(e: unknown): string {
  const err = e as { code?: unknown; message?: unknown };
  const msg = typeof err?.message === 'string' ? err.message : String(e);
  return typeof err?.code === 'string' && !msg.startsWith(`${err.code}`) ? `${err.code}: ${msg}` : msg;
}

/**
 * Parses the command line of `kbypass <tool>` with `parse` (the arguments after the tool's name). Returns the
 * options to run with, or the exit code when there is nothing more to do: 2 after a bad command line (the
 * error's message and where the options are listed, on stderr), 0 after `-h/--help` (`usage`, on stdout).
 */
export function commandLine<O extends { readonly help: boolean }>(tool: string, argv: readonly string[],
  parse: (argv: readonly string[]) => O, usage: string): O | number {
  let o: O;
  try {
    o = parse(argv);
  } catch (e) {
    process.stderr.write(`kbypass ${tool}: ${(e as Error).message}\n(kbypass ${tool} --help lists the options)\n`);
    return 2;
  }
  if (o.help) { process.stdout.write(usage); return 0; }
  return o;
}
