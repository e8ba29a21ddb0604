const MIB = 1024 * 1024;
/** S3's largest part. */
export const MAX_PART_SIZE = 5 * 1024 * MIB;

/**
 * The part size for an artifact expected to reach `expectedSize` bytes: large enough that twice that
 * size fits in `maxParts` parts (headroom for growth since the last run), never below `minPartSize`,
 * rounded up to a whole MiB.
 */
export function partSizeFor(expectedSize: number, minPartSize: number, maxParts: number): number {
  const needed = Math.ceil((2 * expectedSize) / maxParts);
  const size = Math.max(minPartSize, Math.ceil(needed / MIB) * MIB);
  return Math.min(size, MAX_PART_SIZE);
}
