import { createWriteStream } from 'node:fs';
import { link } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { DecryptionConfig } from '../config/config.ts';
import { RunError } from '../errors.ts';
import type { Artifact } from '../manifest.ts';
import { AGE_SUFFIX } from '../naming.ts';
import { FILE_MODE } from '../util/fs.ts';
import { HashingStream } from '../util/hash.ts';
import type { Selection } from '../volume/resolve.ts';
import type { Cleanup } from '../util/cleanup.ts';

/**
 * The plaintext of a selection's encrypted files, decrypted into a folder below `workDir` and checked
 * against the manifest's plaintext sha256, as a selection the restore steps read like any other. A wrong
 * or missing key fails here, before anything is touched. Unencrypted selections come back as they are.
 */
export async function decryptSelection(selection: Selection, decryption: DecryptionConfig | undefined, workDir: string, cleanup: Cleanup): Promise<Selection> {
  if (selection.artifacts.every((a) => a.encryption === null)) return selection;
  const { fileDecrypter } = await import('../crypto/age.ts');
  const open = fileDecrypter(decryption, `run ${selection.manifest.runId}`);
  const dir = await cleanup.folder(workDir, 'decrypted', 'the decrypted copy');
  const artifacts: Artifact[] = [];
  for (const artifact of selection.artifacts) {
    const source = join(selection.runDir, artifact.file);
    if (artifact.encryption === null) {
      await link(source, join(dir, artifact.file));
      artifacts.push(artifact);
      continue;
    }
    const file = artifact.file.endsWith(AGE_SUFFIX) ? artifact.file.slice(0, -AGE_SUFFIX.length) : artifact.file;
    const hasher = new HashingStream();
    await pipeline(await open(source), hasher, createWriteStream(join(dir, file), { mode: FILE_MODE }));
    const { plainSha256, plainSize } = artifact.encryption;
    if (hasher.digest() !== plainSha256 || hasher.bytes !== plainSize) {
      throw new RunError(`${source} decrypts to sha256 ${hasher.digest()} (${hasher.bytes} bytes), the manifest says ${plainSha256} (${plainSize} bytes); nothing was restored: restore an earlier run instead (\`backup-sidecar list\` shows them)`);
    }
    artifacts.push({ ...artifact, file, sha256: plainSha256, size: plainSize, encryption: null });
  }
  return { ...selection, runDir: dir, artifacts };
}
