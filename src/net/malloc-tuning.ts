/**
 * Once per process, when its first connection is bypassed: keep freed heap memory instead of giving it back
 * to the kernel (glibc's M_TRIM_THRESHOLD to 32 MiB, M_MMAP_THRESHOLD to 4 MiB; native/region.c says why).
 * A bypassed socket copies every incoming message into a fresh Buffer; with glibc's defaults each GC cycle
 * hands that memory back and the next megabytes page-fault in again (a 1 GiB pipe: 1.9 GB/s with the
 * defaults, 2.4–2.6 tuned, on this VM). The cost: up to 32 MiB of freed memory stays with the process. A
 * program that sets MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_ or GLIBC_TUNABLES for malloc has chosen for
 * itself and is left alone; so is KBYPASS_MALLOC=default.
 */
import { native } from '../native/binding';
import { trace } from './config';

export const TRIM_BYTES = 32 << 20;
export const MMAP_BYTES = 4 << 20;

let done = false;

/** Whether the environment asks to leave malloc alone. */
export function userChoseMalloc(env: NodeJS.ProcessEnv): boolean {
  return env['MALLOC_TRIM_THRESHOLD_'] !== undefined || env['MALLOC_MMAP_THRESHOLD_'] !== undefined ||
    /glibc\.malloc\./.test(env['GLIBC_TUNABLES'] ?? '') || env['KBYPASS_MALLOC'] === 'default';
}

export function tuneMallocOnce(): void {
  if (done) return;
  done = true;
  if (userChoseMalloc(process.env)) return;
  try {
    if (native().mallocTune(TRIM_BYTES, MMAP_BYTES)) trace('malloc: trim threshold %d MiB, mmap threshold %d MiB', TRIM_BYTES >> 20, MMAP_BYTES >> 20);
  } catch { /* an older addon without it: the defaults stay */ }
}
