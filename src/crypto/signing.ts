import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

/**
 * Authenticated runs: an HMAC-SHA256 over the exact bytes of manifest.json (which binds every artifact's
 * sha256), kept beside it as manifest.json.sig. Checksums beside the data prove nothing to someone who
 * can rewrite both; only a secret can tell a genuine run from a forged one. Pure: no I/O.
 */
export interface SigningKeys {
  /** The first signs; all verify (rotation). */
  keys: Buffer[];
  /** Where they came from, for print-config. */
  from: 'BACKUP_SIGNING_KEY' | 'ENCRYPTION_PASSPHRASE';
}

export type SignatureState = 'valid' | 'missing' | 'invalid';

/** The smallest key length accepted: `openssl rand -hex 32` gives 64 characters. */
export const MIN_KEY_LENGTH = 32;

/** A key derived from the encryption passphrase (HKDF), when no signing key is set. */
export function keyFromPassphrase(passphrase: string): Buffer {
  return Buffer.from(hkdfSync('sha256', passphrase, 'backup-sidecar', 'manifest signing v1', 32));
}

function mac(key: Buffer, manifest: string | Buffer): Buffer {
  return createHmac('sha256', key).update(manifest).digest();
}

/** The signature file's content: one hex HMAC per line (more than one only while a manifest is rewritten). */
export function signatureText(signing: SigningKeys, ...manifests: (string | Buffer)[]): string {
  return manifests.map((m) => `${mac(signing.keys[0]!, m).toString('hex')}\n`).join('');
}

/** Why retention may not count a run with this signature as the newest; undefined when it may (or no key is set). */
export function signatureDoubt(state: SignatureState | undefined): string | undefined {
  return state === 'missing' ? 'unsigned' : state === 'invalid' ? 'signature does not match' : undefined;
}

/** Whether any line of `signature` is the HMAC of `manifest` under any of the keys. */
export function signatureState(signing: SigningKeys, manifest: string | Buffer, signature: string | undefined): SignatureState {
  if (signature === undefined) return 'missing';
  const lines = signature.split('\n').map((l) => l.trim()).filter((l) => /^[0-9a-f]{64}$/.test(l));
  for (const key of signing.keys) {
    const expected = mac(key, manifest);
    if (lines.some((l) => timingSafeEqual(Buffer.from(l, 'hex'), expected))) return 'valid';
  }
  return 'invalid';
}

/** What a WAL file's signature covers: its name as kept (so a genuine file cannot stand in for another) and its sha256. */
function walMessage(file: string, sha256: string): string {
  return `backup-sidecar wal v1\n${file}\n${sha256}\n`;
}

/** The content of <file>.sig for an archived WAL file. */
export function walSignatureText(signing: SigningKeys, file: string, sha256: string): string {
  return signatureText(signing, walMessage(file, sha256));
}

/** Whether `signature` signs the WAL file `file` with this sha256 under any of the keys. */
export function walSignatureState(signing: SigningKeys, file: string, sha256: string, signature: string | undefined): SignatureState {
  return signatureState(signing, walMessage(file, sha256), signature);
}
