/**
 * kbypass/packet: user-space packet I/O. Frames straight from the kernel's rings into JavaScript, through AF_XDP
 * (a UMEM and four rings, with an XDP redirect program) or PACKET_MMAP (TPACKET_V3 rings). See docs/PACKET.md.
 */
export { openPort, type Port } from './port';
export type { PortOptions, PortMode, XdpAttachMode, XdpCopyMode, FanoutType } from './options';
export type { FrameHandler, FrameFiller, PortStats, StartOptions } from './port-base';
export { XdpPort } from './xdp-port';
export { PacketPort } from './packet-port';
export { interfaceInfo, type InterfaceInfo } from './interface';
