/**
 * `kbypass bench net`'s command line: `bench net [--quick] [--json]`, nothing else. Throws a UsageError (the CLI
 * prints it with the usage and exits 2).
 */
import { parseArgs } from 'node:util';

export interface NetBenchArgs { quick: boolean; json: boolean }

export class UsageError extends Error {}

/** `argv`: the whole command line after `kbypass` (starting with `bench net`; options may come anywhere). */
export function parseNetBenchArgs(argv: readonly string[]): NetBenchArgs {
  if (argv.some((a) => a === '--sizes' || a.startsWith('--sizes='))) throw new UsageError('bench net takes no --sizes (its sizes are fixed: 64 B echo, 64 KiB chunks)');
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: { quick: { type: 'boolean' }, json: { type: 'boolean' } },
    });
  } catch (e) {
    throw new UsageError(`bench net: ${(e as Error).message}`);
  }
  const [cmd, sub, ...rest] = parsed.positionals;
  if (cmd !== 'bench' || sub !== 'net') throw new UsageError(`not a bench net command: '${parsed.positionals.join(' ')}'`);
  if (rest.length) throw new UsageError(`bench net takes no arguments ('${rest.join(' ')}')`);
  return { quick: parsed.values.quick === true, json: parsed.values.json === true };
}
