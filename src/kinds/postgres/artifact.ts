import { z } from 'zod';
import { dumpFileName } from '../../naming.ts';
import { commonArtifact, type ArtifactPart } from '../artifact.ts';

export const postgresArtifact = z.object({
  ...commonArtifact,
  kind: z.literal('postgres'),
  format: z.literal('custom'),
  /** The compression in words: zstd:3, gzip:6, gzip (pg_dump's default level), none, or -Z of POSTGRES_EXTRA_OPTS ("default" before 0.2: gzip). */
  compression: z.string(),
  /** zstd: the file is a zstd frame around an uncompressed dump (`.dump.zst`); none: pg_dump's file as it is. */
  fileCompression: z.enum(['none', 'zstd']).default('none'),
  tableCount: z.number().int().nonnegative(),
  /** Exact row count of every dumped table, `schema.table` → rows, from the dump's own snapshot. */
  rowCounts: z.record(z.string(), z.number().int().nonnegative()),
  largeObjects: z.number().int().nonnegative(),
});

export type PostgresArtifact = z.infer<typeof postgresArtifact>;

export const postgresPart: ArtifactPart<typeof postgresArtifact> = {
  kind: 'postgres',
  schema: postgresArtifact,
  fileName: (a) => {
    // A database name PostgreSQL can have: 1 to 63 bytes, no NUL.
    const bytes = Buffer.byteLength(a.source);
    return bytes > 0 && bytes <= 63 && !a.source.includes('\0') ? dumpFileName(a.source, a.fileCompression === 'zstd') : undefined;
  },
};
