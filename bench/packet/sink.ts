/**
 * The TX benchmarks' sink, run in the receiving namespace: an XDP program that drops every frame, attached in
 * native mode to the receiving veth (so the veth's NAPI takes frames off the link as fast as they come), held
 * until stdin ends. Printed {ready:true} once attached.
 */
import { XDP_PROG_DROP, native } from '../../src/native/binding';
import { XDP_FLAGS_DRV_MODE } from '../../src/packet/xdp-layout';

const n = native();
const prog = n.xdpProgLoad(XDP_PROG_DROP, -1);
const link = n.xdpLinkCreate(prog, n.ifIndex(process.argv[2] ?? ''), XDP_FLAGS_DRV_MODE);
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
process.stdin.on('end', () => { n.close(link); n.close(prog); process.exit(0); }).resume();
