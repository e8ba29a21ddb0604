/**
 * WAL positions and segment file names, as PostgreSQL writes them (pure). A segment file is named
 * TTTTTTTTXXXXXXXXYYYYYYYY: timeline, then the segment number split in "log" and "segment within log".
 */

const LSN = /^([0-9A-F]{1,8})\/([0-9A-F]{1,8})$/i;
const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;

/** A WAL position such as 0/2000028, as a number of bytes; undefined when it is not one. */
export function parseLsn(text: string): bigint | undefined {
  const m = LSN.exec(text.trim());
  return m === null ? undefined : (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

function segmentsPerLog(segmentSize: number): bigint {
  return 0x100000000n / BigInt(segmentSize);
}

/** The name of the segment file holding `lsn` on `timeline`. */
export function segmentName(timeline: number, lsn: bigint, segmentSize: number): string {
  return segmentFile(timeline, lsn / BigInt(segmentSize), segmentSize);
}

/** The name of segment number `segNo` on `timeline`. */
export function segmentFile(timeline: number, segNo: bigint, segmentSize: number): string {
  const per = segmentsPerLog(segmentSize);
  const hex = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(segNo / per)}${hex(segNo % per)}`;
}

/** A segment file name read back: its timeline and segment number; undefined for any other name. */
export function parseSegment(name: string, segmentSize: number): { timeline: number; segNo: bigint } | undefined {
  const m = SEGMENT.exec(name);
  if (m === null) return undefined;
  const low = BigInt(`0x${m[3]}`);
  if (low >= segmentsPerLog(segmentSize)) return undefined;
  return { timeline: Number.parseInt(m[1]!, 16), segNo: BigInt(`0x${m[2]}`) * segmentsPerLog(segmentSize) + low };
}

/** A timeline history file name (00000002.history). */
export const HISTORY_FILE = /^[0-9A-F]{8}\.history$/;
