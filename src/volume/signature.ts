import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { signatureState, signatureText, type SignatureState, type SigningKeys } from '../crypto/signing.ts';
import { RunError } from '../errors.ts';
import { MANIFEST, SIGNATURE } from '../naming.ts';
import { writeFileAtomic } from '../util/fs.ts';

async function readOptional(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Whether the run's manifest.json.sig matches its manifest.json under one of the keys. */
export async function runSignature(runDir: string, signing: SigningKeys): Promise<SignatureState> {
  const manifest = await readOptional(join(runDir, MANIFEST));
  if (manifest === undefined) return 'missing';
  return signatureState(signing, manifest, (await readOptional(join(runDir, SIGNATURE)))?.toString('utf8'));
}

/** Why a run's signature refuses it, in one line; undefined when it may be used. */
export function signatureProblem(state: SignatureState, what: string, trustUnsigned: boolean, signing: Pick<SigningKeys, 'from'>, signed: { sigFile: string; content: string; maker: string } = { sigFile: SIGNATURE, content: 'its manifest', maker: 'run' }): string | undefined {
  if (state === 'valid' || (state === 'missing' && trustUnsigned)) return undefined;
  const derived = signing.from === 'ENCRYPTION_PASSPHRASE';
  const key = derived ? 'the key derived from ENCRYPTION_PASSPHRASE' : 'any BACKUP_SIGNING_KEY';
  return state === 'missing'
    ? `${what} is not signed (no ${signed.sigFile}) and ${derived ? 'signing is on (a key derived from ENCRYPTION_PASSPHRASE)' : 'BACKUP_SIGNING_KEY is set'}: it may be forged, so it is refused and nothing was touched; if it is an older ${signed.maker} made before the key was set, pass --trust-unsigned`
    : `${what} has a signature that does not match ${signed.content} under ${key}: ${derived ? `the passphrase differs from the one the ${signed.maker} was made with, or the ${signed.maker} ` : 'it '}was changed or forged, so it is refused and nothing was touched`;
}

/** Refuses a run whose signature is missing or wrong, before anything else in it is read. No key: nothing to check. */
export async function checkRunSignature(runDir: string, what: string, signing: SigningKeys | undefined, trustUnsigned: boolean): Promise<void> {
  if (signing === undefined) return;
  const problem = signatureProblem(await runSignature(runDir, signing), what, trustUnsigned, signing);
  if (problem !== undefined) throw new RunError(problem);
}

/**
 * Writes a run's manifest and its signature so that at every instant the signature file holds a line
 * that matches the manifest on disk: while a manifest is rewritten (`previous`), the file briefly signs
 * both. Without a key, a signature left from an earlier key is removed (it would no longer match).
 */
export async function writeSignedManifest(runDir: string, text: string, signing: SigningKeys | undefined, previous?: string): Promise<void> {
  const sig = join(runDir, SIGNATURE);
  if (signing === undefined) {
    await rm(sig, { force: true });
    await writeFileAtomic(join(runDir, MANIFEST), text);
    return;
  }
  if (previous !== undefined) await writeFileAtomic(sig, signatureText(signing, text, previous));
  await writeFileAtomic(join(runDir, MANIFEST), text);
  await writeFileAtomic(sig, signatureText(signing, text));
}
