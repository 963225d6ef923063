/** The checks ibv_post_send / ibv_post_recv make before a WR is queued (EINVAL with the WR's index). */
import { PostError } from '../api';
import type { RecvWr, Sge } from '../types';

const U32 = 0x100000000;

/** A scatter/gather list of at most `maxSge` well-formed entries. */
export function checkSgList(list: readonly Sge[] | undefined, index: number, maxSge: number): void {
  if (list === undefined) return;
  if (!Array.isArray(list)) throw new PostError('EINVAL', index, 'sgList must be an array of { addr, length, lkey }');
  if (list.length > maxSge) throw new PostError('EINVAL', index, `${list.length} SGEs; the queue takes at most ${maxSge}`);
  for (let k = 0; k < list.length; k++) {
    const s = list[k];
    if (s === null || typeof s !== 'object' || !Number.isSafeInteger(s.addr) || s.addr < 0 ||
        !Number.isInteger(s.length) || s.length < 0 || s.length >= U32 || !Number.isInteger(s.lkey) || s.lkey < 0 || s.lkey >= U32) {
      throw new PostError('EINVAL', index, `SGE ${k} must be { addr: integer ≥ 0, length: u32, lkey: u32 }`);
    }
  }
}

export function checkRecvWr(w: RecvWr, index: number, maxSge: number): void {
  if (w === null || typeof w !== 'object') throw new PostError('EINVAL', index, 'a receive WR must be an object');
  if (w.wrId !== undefined && (typeof w.wrId !== 'number' || !Number.isFinite(w.wrId))) throw new PostError('EINVAL', index, 'wrId must be a number');
  checkSgList(w.sgList, index, maxSge);
}
