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

/**
 * Which kept WAL segments no kept base backup needs: those before the earliest start of any of them.
 * Recovery from a base backup reads its timeline from its start segment on, and later timelines only
 * after they branched off it, so nothing before the earliest start is ever read. Pure; history files are
 * never listed (they are small, and recovery needs every one to follow timelines). No base backup: none.
 */
export function walNotNeeded(names: readonly string[], bases: readonly { startLsn: string; walSegmentSize: number }[]): string[] {
  if (bases.length === 0) return [];
  const size = bases[0]!.walSegmentSize;
  if (bases.some((b) => b.walSegmentSize !== size)) return [];
  const earliest = bases.map((b) => parseLsn(b.startLsn)! / BigInt(size)).reduce((a, b) => (b < a ? b : a));
  return names.filter((n) => {
    const seg = parseSegment(n, size);
    return seg !== undefined && seg.segNo < earliest;
  });
}

/** The first missing segment of each hole in the kept WAL, per timeline, between its oldest and newest kept segment. Pure. */
export function walGaps(names: readonly string[], segmentSize: number): string[] {
  const byTimeline = new Map<number, bigint[]>();
  for (const name of names) {
    const seg = parseSegment(name, segmentSize);
    if (seg !== undefined) byTimeline.set(seg.timeline, [...(byTimeline.get(seg.timeline) ?? []), seg.segNo]);
  }
  const gaps: string[] = [];
  for (const [timeline, segs] of [...byTimeline].sort((a, b) => a[0] - b[0])) {
    const sorted = [...new Set(segs)].sort((a, b) => (a < b ? -1 : 1));
    for (let i = 1; i < sorted.length; i++) if (sorted[i]! !== sorted[i - 1]! + 1n) gaps.push(segmentFile(timeline, sorted[i - 1]! + 1n, segmentSize));
  }
  return gaps;
}
