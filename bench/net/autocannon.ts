/**
 * autocannon (a devDependency), loaded through its programmatic API, with the little of its types that
 * `bench net` uses. A missing package is a clear error naming it.
 */
export interface AutocannonOptions {
  url: string;
  connections: number;
  duration: number;
  pipelining?: number;
  expectBody?: string;
}

export interface AutocannonResult {
  /** Per-second samples of completed requests: `average` is autocannon's Req/Sec. */
  requests: { average: number; total: number };
  duration: number;
  errors: number;
  timeouts: number;
  mismatches: number;
  non2xx: number;
}

export type Autocannon = (opts: AutocannonOptions) => PromiseLike<AutocannonResult>;

export function loadAutocannon(): Autocannon {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return require('autocannon') as Autocannon;
  } catch (e) {
    throw new Error(
      `bench net needs the npm package 'autocannon' (a devDependency of kbypass) and could not load it: ` +
      `${(e as Error).message.split('\n')[0]}. Install it with \`npm install --save-dev autocannon\`.`,
    );
  }
}
