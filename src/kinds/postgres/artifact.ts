import { z } from 'zod';
import { dumpFileName } from '../../naming.ts';
import { commonArtifact, type ArtifactPart } from '../artifact.ts';

export const postgresArtifact = z.object({
  ...commonArtifact,
  kind: z.literal('postgres'),
  format: z.literal('custom'),
  /** pg_dump's -Z setting, or "default" (gzip for the custom format). */
  compression: z.string(),
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
    return bytes > 0 && bytes <= 63 && !a.source.includes('\0') ? dumpFileName(a.source) : undefined;
  },
};
