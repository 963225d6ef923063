/**
 * pcap files, libpcap's classic format: a writer (nanosecond timestamps, Ethernet, little-endian) and a
 * reader for both timestamp resolutions and both byte orders.
 *
 * ```
 *  File header, 24 bytes, once      0       4         6         8          12        16        20        24
 *                                   +-------+---------+---------+----------+---------+---------+---------+
 *                                   | magic | major 2 | minor 4 | thiszone | sigfigs | snaplen | linktype|
 *                                   |  u32  |   u16   |   u16   |   i32 0  |  u32 0  |   u32   | u32, 1  |
 *                                   +-------+---------+---------+----------+---------+---------+---------+
 *  Record header, 16 bytes,         0        4                     8         12        16
 *  before each packet's bytes       +--------+---------------------+---------+---------+----------------+
 *                                   | ts sec | ts nsec (or usec)   | caplen  | origlen | caplen bytes   |
 *                                   +--------+---------------------+---------+---------+----------------+
 * ```
 * The magic, read in the file's byte order, is 0xa1b23c4d for nanosecond timestamps and 0xa1b2c3d4 for
 * microsecond ones; read in the other order it says the file is byte-swapped. caplen is what the file holds
 * (at most snaplen), origlen the packet's length on the wire. Linktype 1 is EN10MB (Ethernet).
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { KbypassError, invalidArgType, invalidArgValue, outOfRange } from '../errors';

export const PCAP_MAGIC_USEC = 0xa1b2c3d4;
export const PCAP_MAGIC_NSEC = 0xa1b23c4d;
export const PCAP_VERSION_MAJOR = 2;
export const PCAP_VERSION_MINOR = 4;
export const LINKTYPE_ETHERNET = 1;

export const FH_MAGIC = 0;
export const FH_VERSION_MAJOR = 4;
export const FH_VERSION_MINOR = 6;
export const FH_THISZONE = 8;
export const FH_SIGFIGS = 12;
export const FH_SNAPLEN = 16;
export const FH_LINKTYPE = 20;
export const FILE_HEADER_LEN = 24;

export const RH_TS_SEC = 0;
export const RH_TS_FRAC = 4;
export const RH_CAPLEN = 8;
export const RH_ORIGLEN = 12;
export const RECORD_HEADER_LEN = 16;

/** libpcap's largest snaplen (MAXIMUM_SNAPLEN), and our default. */
export const MAX_SNAPLEN = 262144;
/** The writer's buffer: records are gathered here and written when it is full (a record always fits). */
export const WRITE_BUFFER_SIZE = 1 << 20;

/** Malformed input to readPcap / parsePcap. */
export const ERR_PCAP_FORMAT = 'ERR_KBYPASS_PCAP_FORMAT';
/** write() on a closed PcapWriter. */
export const ERR_PCAP_CLOSED = 'ERR_KBYPASS_PCAP_CLOSED';

/** Options of `new PcapWriter(fd)` and `PcapWriter.open()`. */
export interface PcapWriterOptions {
  /**
   * The most bytes kept of each packet (1–262144); longer packets are truncated, their origlen kept.
   * @defaultValue 262144
   */
  snaplen?: number;
  /**
   * Close the fd in close() (`new PcapWriter(fd)` only; a writer from open() always closes its own).
   * @defaultValue true
   */
  autoClose?: boolean;
}

/** Options of `PcapWriter.open()`. */
export interface PcapOpenOptions {
  /** As in PcapWriterOptions. @defaultValue 262144 */
  snaplen?: number;
  /** Appending to an existing file is not supported: the file is created or truncated. @defaultValue false */
  append?: false;
}

/**
 * Writes a pcap file (nanosecond magic, linktype EN10MB, little-endian) through a 1 MiB buffer: write()
 * copies the packet in, and the buffer goes to the file with fs.writeSync when a record would not fit, on
 * flush() and on close(). The file header is written with the first flush.
 */
export class PcapWriter {
  /** The most bytes kept of each packet. */
  readonly snaplen: number;
  #fd: number;
  #autoClose: boolean;
  #buf = Buffer.allocUnsafe(WRITE_BUFFER_SIZE);
  #used = 0;
  #closed = false;
  /** The last source array written from, and a Buffer over the same memory (kept to copy without allocating). */
  #srcArray: Uint8Array | null = null;
  #src: Buffer = Buffer.alloc(0);
  #packets = 0;
  #bytes = 0;

  /** Creates (or truncates) the file at `path`, mode 0o666 less the umask. */
  static open(path: string, options: PcapOpenOptions = {}): PcapWriter {
    if (typeof path !== 'string') throw invalidArgType('path', 'of type string', path);
    if (options.append !== undefined && options.append !== false) throw invalidArgValue('options.append', options.append, 'must be false (appending is not supported)');
    const snaplen = snaplenArg(options.snaplen);
    const fd = openSync(path, 'w');
    return new PcapWriter(fd, { snaplen, autoClose: true });
  }

  /** Writes to an open fd, from its current position. */
  constructor(fd: number, options: PcapWriterOptions = {}) {
    if (!Number.isInteger(fd) || fd < 0) throw invalidArgValue('fd', fd, 'must be a file descriptor');
    this.snaplen = snaplenArg(options.snaplen);
    this.#fd = fd;
    this.#autoClose = options.autoClose ?? true;
    const b = this.#buf;
    b.writeUInt32LE(PCAP_MAGIC_NSEC, FH_MAGIC);
    b.writeUInt16LE(PCAP_VERSION_MAJOR, FH_VERSION_MAJOR);
    b.writeUInt16LE(PCAP_VERSION_MINOR, FH_VERSION_MINOR);
    b.writeInt32LE(0, FH_THISZONE);
    b.writeUInt32LE(0, FH_SIGFIGS);
    b.writeUInt32LE(this.snaplen, FH_SNAPLEN);
    b.writeUInt32LE(LINKTYPE_ETHERNET, FH_LINKTYPE);
    this.#used = FILE_HEADER_LEN;
  }

  /** Packets written. */
  get packets(): number {
    return this.#packets;
  }

  /** Packet bytes written (the captured bytes, at most snaplen each; headers not counted). */
  get bytes(): number {
    return this.#bytes;
  }

  /** close() has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Adds one packet: `buf[offset, offset + length)`, of which the first snaplen bytes are kept, captured
   * `origLength` bytes long on the wire (≥ length: a packet already cut short says how long it was), at
   * `tsSec` seconds and `tsNsec` nanoseconds since the epoch.
   */
  write(buf: Uint8Array, offset: number, length: number, origLength: number, tsSec: number, tsNsec: number): void {
    if (this.#closed) throw new KbypassError(ERR_PCAP_CLOSED, 'The pcap writer is closed');
    if (!Number.isInteger(offset) || offset < 0 || offset > buf.length) throw outOfRange('offset', `an integer from 0 to ${buf.length}`, offset);
    if (!Number.isInteger(length) || length < 0 || length > buf.length - offset) throw outOfRange('length', `an integer from 0 to ${buf.length - offset}`, length);
    if (!Number.isInteger(origLength) || origLength < length || origLength > 0xffffffff) throw outOfRange('origLength', `an integer from length (${length}) to 4294967295`, origLength);
    if (!Number.isInteger(tsSec) || tsSec < 0 || tsSec > 0xffffffff) throw outOfRange('tsSec', 'an integer from 0 to 4294967295', tsSec);
    if (!Number.isInteger(tsNsec) || tsNsec < 0 || tsNsec > 999_999_999) throw outOfRange('tsNsec', 'an integer from 0 to 999999999', tsNsec);
    const capLen = Math.min(length, this.snaplen);
    if (this.#used + RECORD_HEADER_LEN + capLen > WRITE_BUFFER_SIZE) this.#drain();
    const b = this.#buf;
    const p = this.#used;
    b.writeUInt32LE(tsSec, p + RH_TS_SEC);
    b.writeUInt32LE(tsNsec, p + RH_TS_FRAC);
    b.writeUInt32LE(capLen, p + RH_CAPLEN);
    b.writeUInt32LE(origLength, p + RH_ORIGLEN);
    // Buffer#copy from a Buffer over the source's memory (cached per source array): no view made per packet.
    if (this.#srcArray !== buf) {
      this.#srcArray = buf;
      this.#src = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    }
    this.#src.copy(b, p + RECORD_HEADER_LEN, offset, offset + capLen);
    this.#used = p + RECORD_HEADER_LEN + capLen;
    this.#packets++;
    this.#bytes += capLen;
  }

  /** Writes out what is buffered (nothing to do once closed). */
  flush(): void {
    if (!this.#closed) this.#drain();
  }

  /** Flushes and, unless autoClose was false, closes the fd. Calling it again does nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#drain();
    } finally {
      if (this.#autoClose) closeSync(this.#fd);
    }
  }

  #drain(): void {
    let done = 0;
    try {
      while (done < this.#used) done += writeSync(this.#fd, this.#buf, done, this.#used - done);
    } finally {
      // After a failed write (ENOSPC, …) keep what was not written, so that a retry neither loses nor repeats bytes.
      this.#buf.copyWithin(0, done, this.#used);
      this.#used -= done;
    }
  }
}

function snaplenArg(v: unknown): number {
  if (v === undefined) return MAX_SNAPLEN;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_SNAPLEN) throw outOfRange('options.snaplen', `an integer from 1 to ${MAX_SNAPLEN}`, v);
  return v;
}

// ---------------------------------------------------------------------------------------------- reading

/** One packet read from a pcap file. */
export interface PcapRecord {
  tsSec: number;
  /** Nanoseconds (a microsecond file's value times 1000). */
  tsNsec: number;
  /** Bytes in the file: data.length. */
  capLen: number;
  /** Bytes on the wire. */
  origLen: number;
  /** A copy of the captured bytes. */
  data: Buffer;
}

/**
 * Reads a whole pcap file (either magic, either byte order, any linktype). A file that is not one, or that
 * ends inside a record, throws ERR_KBYPASS_PCAP_FORMAT.
 */
export function readPcap(path: string): PcapRecord[] {
  return parsePcap(readFileSync(path), path);
}

/** readPcap on bytes in memory; `name` goes into error messages. */
export function parsePcap(file: Uint8Array, name = 'pcap data'): PcapRecord[] {
  const fail = (what: string): KbypassError => new KbypassError(ERR_PCAP_FORMAT, `${name}: ${what}`);
  if (file.length < FILE_HEADER_LEN) throw fail(`${file.length} bytes: too short for a pcap file header (${FILE_HEADER_LEN})`);
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const magic = v.getUint32(FH_MAGIC, true);
  let le: boolean;
  if (magic === PCAP_MAGIC_NSEC || magic === PCAP_MAGIC_USEC) le = true;
  else if (magic === swap32(PCAP_MAGIC_NSEC) || magic === swap32(PCAP_MAGIC_USEC)) le = false;
  else throw fail(`bad magic 0x${magic.toString(16).padStart(8, '0')}: not a pcap file`);
  const nsec = v.getUint32(FH_MAGIC, le) === PCAP_MAGIC_NSEC;
  const major = v.getUint16(FH_VERSION_MAJOR, le);
  if (major !== PCAP_VERSION_MAJOR) throw fail(`version ${major}.${v.getUint16(FH_VERSION_MINOR, le)}: only 2.x is read`);
  const maxCap = Math.max(v.getUint32(FH_SNAPLEN, le), MAX_SNAPLEN);
  const fracLimit = nsec ? 1_000_000_000 : 1_000_000;

  const records: PcapRecord[] = [];
  let p = FILE_HEADER_LEN;
  while (p < file.length) {
    const at = `record ${records.length + 1} at byte ${p}`;
    if (file.length - p < RECORD_HEADER_LEN) throw fail(`${at}: truncated record header (${file.length - p} of ${RECORD_HEADER_LEN} bytes)`);
    const tsSec = v.getUint32(p + RH_TS_SEC, le);
    const frac = v.getUint32(p + RH_TS_FRAC, le);
    const capLen = v.getUint32(p + RH_CAPLEN, le);
    const origLen = v.getUint32(p + RH_ORIGLEN, le);
    if (frac >= fracLimit) throw fail(`${at}: timestamp fraction ${frac} is not below ${fracLimit}`);
    if (capLen > maxCap) throw fail(`${at}: caplen ${capLen} exceeds ${maxCap}`);
    if (capLen > origLen) throw fail(`${at}: caplen ${capLen} exceeds origlen ${origLen}`);
    const start = p + RECORD_HEADER_LEN;
    if (capLen > file.length - start) throw fail(`${at}: truncated packet data (${file.length - start} of ${capLen} bytes)`);
    records.push({ tsSec, tsNsec: nsec ? frac : frac * 1000, capLen, origLen, data: Buffer.from(file.subarray(start, start + capLen)) });
    p = start + capLen;
  }
  return records;
}

function swap32(n: number): number {
  return (((n & 0xff) << 24) | ((n & 0xff00) << 8) | ((n >>> 8) & 0xff00) | (n >>> 24)) >>> 0;
}
