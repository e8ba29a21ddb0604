import { z } from 'zod';
import { MEDIA_NAME, tarballFileName } from '../../naming.ts';
import { commonArtifact, type ArtifactPart } from '../artifact.ts';

export const mediaArtifact = z.object({
  ...commonArtifact,
  kind: z.literal('media'),
  format: z.literal('tar'),
  compression: z.enum(['gzip', 'zstd']),
  /** The folder it was taken from. */
  path: z.string(),
  /** Archive members below the folder root (files, folders, links). */
  entries: z.number().int().nonnegative(),
  /** Regular files among them and the bytes they hold (a hard-linked file counted once); absent before 0.2. */
  files: z.number().int().nonnegative().optional(),
  bytes: z.number().int().nonnegative().optional(),
  /** Files that changed or vanished while being read. */
  warnings: z.array(z.string()),
});

export type MediaArtifact = z.infer<typeof mediaArtifact>;

export const mediaPart: ArtifactPart<typeof mediaArtifact> = {
  kind: 'media',
  schema: mediaArtifact,
  fileName: (a) => (MEDIA_NAME.test(a.source) ? tarballFileName(a.source, a.compression) : undefined),
};
