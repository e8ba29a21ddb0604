import { z } from 'zod';
import { GLOBALS_FILE } from '../../naming.ts';
import { commonArtifact, type ArtifactPart } from '../artifact.ts';

/** Roles and tablespaces (pg_dumpall --globals-only, plain SQL), with POSTGRES_GLOBALS. */
export const globalsArtifact = z.object({
  ...commonArtifact,
  kind: z.literal('globals'),
  format: z.literal('sql'),
  roles: z.array(z.string()),
  tablespaces: z.array(z.string()),
});

export type GlobalsArtifact = z.infer<typeof globalsArtifact>;

export const globalsPart: ArtifactPart<typeof globalsArtifact> = {
  kind: 'globals',
  schema: globalsArtifact,
  fileName: (a) => (a.source === 'globals' ? GLOBALS_FILE : undefined),
};
