import { readFile } from 'node:fs/promises';
import { RunError } from '../errors.ts';
import { walSignatureState, walSignatureText, type SigningKeys } from '../crypto/signing.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { hashFile } from '../util/hash.ts';
import { signatureProblem } from '../volume/signature.ts';

/**
 * Signed WAL (BACKUP_SIGNING_KEY, or a key derived from ENCRYPTION_PASSPHRASE, as for runs): every
 * archived WAL file has <file>.sig beside it, an HMAC over its name and sha256, and it travels with the
 * file to every remote target. Without it, whoever can write to the volume or the bucket could slip a
 * forged segment into a recovery, which replays whatever the WAL says.
 */
export const WAL_SIG_SUFFIX = '.sig';

/** Writes <path>.sig for the WAL file kept as `file` (its own name) with this sha256. */
export async function writeWalSignature(path: string, file: string, sha256: string, signing: SigningKeys): Promise<void> {
  await writeFileAtomic(`${path}${WAL_SIG_SUFFIX}`, walSignatureText(signing, file, sha256));
}

/** Refuses a WAL file whose signature is missing (unless trusted) or wrong, before anything reads its content. No key: nothing to check. */
export async function checkWalSignature(path: string, file: string, signing: SigningKeys | undefined, trustUnsigned: boolean): Promise<void> {
  if (signing === undefined) return;
  const signature = await readFile(`${path}${WAL_SIG_SUFFIX}`, 'utf8').catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? undefined : Promise.reject(error)));
  const state = signature === undefined ? 'missing' : walSignatureState(signing, file, (await hashFile(path)).sha256, signature);
  const problem = signatureProblem(state, `WAL file ${path}`, trustUnsigned, signing, { sigFile: `${file}${WAL_SIG_SUFFIX}`, content: 'its content', maker: 'segment' });
  if (problem !== undefined) throw new RunError(problem);
}
