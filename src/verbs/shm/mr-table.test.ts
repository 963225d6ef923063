/**
 * The published memory-region table (layout.ts part 4, mr-table.ts): publish → lookup → revoke as a peer sees
 * it, keys carrying a generation so a stale key never matches a reused slot, out-of-range and zero keys, the
 * bounds check covers(), and attach() checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MrRef, MrTable } from './mr-table';
import { MRT_ENTRY_BYTES, MRT_HEADER_BYTES, MRT_I_CAPACITY, MRT_I_MAGIC, MRT_I_VERSION, LAYOUT_VERSION, iovaOf, keyIndex, makeKey, mrtBytes } from './layout';

const layoutErr = (re: RegExp) => (e: unknown): boolean => (e as { code?: string }).code === 'ERR_KBYPASS_LAYOUT' && re.test((e as Error).message);

function table(cap = 16): { buf: ArrayBuffer; owner: MrTable; peer: MrTable } {
  const buf = new ArrayBuffer(mrtBytes(cap));
  const owner = MrTable.init(buf, cap);
  return { buf, owner, peer: MrTable.attach(buf) };
}

test('keys: index and generation pack into a u32; keyIndex recovers the slot', () => {
  assert.equal(makeKey(1, 1), 0x101);
  assert.equal(makeKey(5, 255), 0x5ff);
  assert.equal(makeKey(0xffffff, 0xff), 0xffffffff);
  assert.equal(makeKey(3, 0x102), makeKey(3, 2), 'generation is 8 bits');
  assert.equal(keyIndex(makeKey(0xabcdef, 7)), 0xabcdef);
  assert.equal(keyIndex(0xffffffff), 0xffffff);
});

test('publish → a peer looks the key up with every field; revoke → the lookup fails at once', () => {
  const { owner, peer } = table();
  const ref = new MrRef();
  const k1 = makeKey(1, 1);
  const k2 = makeKey(15, 200); // the last slot
  const k3 = makeKey(2, 255);
  owner.publish(k1, 0xf, 1, iovaOf(1, 0), 8192);
  owner.publish(k2, 0x5, 2 ** 17 - 1, iovaOf(2 ** 17 - 1, 4096), 2 ** 36 - 4096);
  owner.publish(k3, 0x1, 7, iovaOf(7, 0), 1);
  assert.equal(peer.lookup(k1, ref), true);
  assert.deepEqual({ ...ref }, { key: k1, access: 0xf, regionId: 1, addr: 2 ** 36, length: 8192 });
  assert.equal(peer.lookup(k2, ref), true);
  assert.deepEqual({ ...ref }, { key: k2, access: 0x5, regionId: 2 ** 17 - 1, addr: (2 ** 17 - 1) * 2 ** 36 + 4096, length: 2 ** 36 - 4096 });
  assert.equal(peer.lookup(k3, ref), true);
  assert.equal(ref.regionId, 7);
  owner.revoke(k1);
  assert.equal(peer.lookup(k1, ref), false);
  assert.equal(peer.lookup(k2, ref), true, 'other entries stay');
  owner.revoke(k2);
  assert.equal(peer.lookup(k2, ref), false);
  assert.equal(peer.lookup(k3, ref), true);
  // Revoking twice, or a key never published, changes nothing.
  owner.revoke(k1);
  owner.revoke(makeKey(9, 1));
  assert.equal(peer.lookup(k3, ref), true);
});

test('a stale generation never matches a reused slot, and revoking with it leaves the new MR alone', () => {
  const { owner, peer } = table();
  const ref = new MrRef();
  const old = makeKey(4, 1);
  owner.publish(old, 0xf, 1, iovaOf(1, 0), 4096);
  owner.revoke(old);
  const now = makeKey(4, 2);
  owner.publish(now, 0x4, 2, iovaOf(2, 0), 64);
  assert.equal(peer.lookup(old, ref), false, 'the old key finds the new MR in its slot and refuses it');
  assert.equal(peer.lookup(now, ref), true);
  assert.equal(ref.regionId, 2);
  owner.revoke(old); // a stale deregistration must not take the new MR away
  assert.equal(peer.lookup(now, ref), true);
  // Every other generation of the slot is refused too; generation 0 never appears in a key the PD hands out.
  for (let g = 0; g < 256; g++) if (g !== 2) assert.equal(peer.lookup(makeKey(4, g), ref), false, `generation ${g}`);
  // Publishing over a live slot (no revoke in between) replaces it for lookups.
  owner.publish(makeKey(4, 3), 0x2, 3, iovaOf(3, 0), 8);
  assert.equal(peer.lookup(now, ref), false);
  assert.equal(peer.lookup(makeKey(4, 3), ref), true);
  assert.equal(ref.access, 0x2);
});

test('lookups of key 0, of an index beyond the capacity, and of empty slots are false', () => {
  const cap = 16;
  // A region larger than the table: a key past the capacity must not read the bytes after it.
  const buf = new ArrayBuffer(mrtBytes(cap) + 4 * MRT_ENTRY_BYTES);
  const owner = MrTable.init(buf, cap);
  const peer = MrTable.attach(buf);
  const ref = new MrRef();
  // Fake an "entry" just past the table that would match index 16, generation 1.
  const past = new Int32Array(buf, MRT_HEADER_BYTES + cap * MRT_ENTRY_BYTES, 8);
  past[0] = makeKey(cap, 1);
  assert.equal(peer.lookup(makeKey(cap, 1), ref), false);
  assert.equal(peer.lookup(makeKey(cap + 1000, 1), ref), false);
  assert.equal(peer.lookup(0xffffffff, ref), false);
  assert.equal(peer.lookup(0, ref), false);
  assert.equal(peer.lookup(makeKey(3, 1), ref), false, 'an empty slot');
  // Slot 0 is not special to the table, but key 0 (slot 0, generation 0) is the empty marker.
  owner.publish(makeKey(0, 1), 1, 1, 0, 1);
  assert.equal(peer.lookup(makeKey(0, 1), ref), true);
  assert.equal(peer.lookup(0, ref), false);
  // The table with exactly its own size: index = capacity is refused, not read past the end.
  const { peer: exact } = table(cap);
  assert.equal(exact.lookup(makeKey(cap, 1), ref), false);
});

test('covers(): ranges inside the MR only', () => {
  const r = new MrRef();
  r.addr = 2 ** 36;
  r.length = 4096;
  assert.equal(r.covers(2 ** 36, 4096), true, 'all of it');
  assert.equal(r.covers(2 ** 36, 0), true);
  assert.equal(r.covers(2 ** 36 + 4096, 0), true, 'an empty range at the end');
  assert.equal(r.covers(2 ** 36 + 4088, 8), true, 'the last word');
  assert.equal(r.covers(2 ** 36 + 4089, 8), false, 'one byte past the end');
  assert.equal(r.covers(2 ** 36 - 1, 2), false, 'one byte before the start');
  assert.equal(r.covers(2 ** 36, 4097), false);
  assert.equal(r.covers(2 ** 36 + 10, -5), false, 'a negative length');
  assert.equal(r.covers(0, 8), false);
  assert.equal(r.covers(2 ** 37, 8), false, 'another region');
});

test('attach() checks magic, version and capacity against the region', () => {
  const good = (cap = 16): ArrayBuffer => { const b = new ArrayBuffer(mrtBytes(cap)); MrTable.init(b, cap); return b; };
  assert.equal(MrTable.attach(good()).capacity, 16);
  assert.throws(() => MrTable.attach(new ArrayBuffer(MRT_HEADER_BYTES - 4)), layoutErr(/smaller than its header/));
  assert.throws(() => MrTable.attach(new ArrayBuffer(mrtBytes(16))), layoutErr(/bad magic/));
  let b = good();
  new Int32Array(b)[MRT_I_MAGIC] = 0x5051424b; // a QP's magic
  assert.throws(() => MrTable.attach(b), layoutErr(/bad magic/));
  b = good();
  new Int32Array(b)[MRT_I_VERSION] = LAYOUT_VERSION + 1;
  assert.throws(() => MrTable.attach(b), layoutErr(/version/));
  for (const cap of [0, -1, 17, (1 << 24) + 1]) {
    b = good();
    new Int32Array(b)[MRT_I_CAPACITY] = cap;
    assert.throws(() => MrTable.attach(b), layoutErr(/capacity/), `capacity ${cap}`);
  }
  b = good();
  new Int32Array(b)[MRT_I_CAPACITY] = 8; // a smaller table in a bigger region is fine
  assert.equal(MrTable.attach(b).capacity, 8);
});
