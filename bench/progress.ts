/**
 * Progress lines of a long benchmark run, on stderr: `[ i/N]   t s  what`. On a terminal each line replaces
 * the last; otherwise (CI logs, pipes) one line each. `out` null: silent.
 */
export function progressReporter(out: NodeJS.WritableStream | null, steps: number): { step(what: string): void; done(): void } {
  const tty = out !== null && (out as NodeJS.WriteStream).isTTY === true;
  const started = Date.now();
  let n = 0;
  return {
    step(what: string): void {
      n++;
      if (!out) return;
      const line = `[${String(n).padStart(String(steps).length)}/${steps}] ${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s  ${what}`;
      out.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
    },
    /** Clear the last line on a terminal. */
    done(): void { if (out && tty) out.write('\r\x1b[K'); },
  };
}
