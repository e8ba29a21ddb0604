import { z } from 'zod';
import { BASE_BACKUP_FILE } from '../../naming.ts';
import { parseLsn } from '../../wal/lsn.ts';
import { commonArtifact, type ArtifactPart } from '../artifact.ts';

const lsn = z.string().refine((s) => parseLsn(s) !== undefined, { message: 'is not a WAL position such as 0/2000028' });

/** The whole cluster's files (pg_basebackup, tar, zstd), without WAL: the WAL archive beside it recovers from it. */
export const baseBackupArtifact = z.object({
  ...commonArtifact,
  kind: z.literal('basebackup'),
  format: z.literal('tar'),
  compression: z.literal('zstd'),
  timeline: z.number().int().positive(),
  /** WAL from here on (its segment) is needed to recover from it; the backup is consistent once recovery passes endLsn. */
  startLsn: lsn,
  endLsn: lsn,
  /** Before pg_basebackup started and after it ended: recovery can reach any time after endTime. */
  startTime: z.iso.datetime(),
  endTime: z.iso.datetime(),
  walSegmentSize: z.number().int().positive(),
  serverVersion: z.string(),
});

export type BaseBackupArtifact = z.infer<typeof baseBackupArtifact>;

export const baseBackupPart: ArtifactPart<typeof baseBackupArtifact> = {
  kind: 'basebackup',
  schema: baseBackupArtifact,
  fileName: (a) => (a.source === 'cluster' ? BASE_BACKUP_FILE : undefined),
};
