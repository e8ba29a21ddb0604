import { z } from 'zod';

/** The manifest fields every artifact has, whatever its kind. */
export const commonArtifact = {
  file: z.string(),
  /** Database or media folder name. */
  source: z.string(),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** How long producing and writing it took (absent before 0.2). */
  durationMs: z.number().int().nonnegative().optional(),
  /** Encrypted (age): size and sha256 above are of the stored file; these of the plaintext. */
  encryption: z
    .object({ format: z.literal('age'), plainSha256: z.string().regex(/^[0-9a-f]{64}$/), plainSize: z.number().int().nonnegative() })
    .nullable()
    .default(null),
};

/**
 * A kind's part of the manifest, pure (no I/O): its schema, and the one file name this tool writes for
 * one of its artifacts (without the encryption suffix), or undefined when no artifact of ours can have
 * that source. A manifest naming any other file is not ours: nothing in it is opened.
 */
export interface ArtifactPart<S extends z.ZodObject = z.ZodObject> {
  kind: string;
  schema: S;
  fileName(a: z.infer<S>): string | undefined;
}
