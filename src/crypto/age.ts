import { createReadStream } from 'node:fs';
import { Duplex, PassThrough, Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { pipeline } from 'node:stream/promises';
import { Decrypter, Encrypter, generateX25519Identity, identityToRecipient } from 'age-encryption';
import type { DecryptionConfig, EncryptionConfig } from '../config/config.ts';
import { RunError, UsageError, describe } from '../errors.ts';

const toWeb = (stream: Readable) => Readable.toWeb(stream) as unknown as ReadableStream<Uint8Array>;
const fromWeb = (stream: ReadableStream<Uint8Array>) => Readable.fromWeb(stream as unknown as NodeReadableStream<Uint8Array>);

/** A Duplex that encrypts what is written to it, in age's 64 KiB chunks: memory stays bounded. */
function encryptingStream(encrypter: Encrypter): Duplex {
  const input = new PassThrough();
  const output = new PassThrough();
  encrypter
    .encrypt(toWeb(input))
    .then((encrypted) => pipeline(fromWeb(encrypted), output))
    .catch((error: unknown) => output.destroy(error as Error));
  return Duplex.from({ writable: input, readable: output });
}

async function decryptingStream(path: string, decrypter: Decrypter, what: string): Promise<Readable> {
  try {
    return fromWeb(await decrypter.decrypt(toWeb(createReadStream(path))));
  } catch (error) {
    const why = describe(error);
    const hint = /no identity matched/.test(why) ? 'wrong key: set ENCRYPTION_IDENTITY_FILE or ENCRYPTION_PASSPHRASE to what it was encrypted for' : why;
    throw new RunError(`cannot decrypt ${what}: ${hint}`);
  }
}

/**
 * The keys of one backup run. With recipients, a key that lives only in memory for this run is added as
 * one more recipient, so the run can read back and check what it wrote (a public key alone cannot
 * decrypt); it is gone when the run ends. With a passphrase, the passphrase reads it back.
 */
export class RunCipher {
  private readonly encrypter: Encrypter;
  private readonly decrypter: Decrypter;

  private constructor(encrypter: Encrypter, decrypter: Decrypter) {
    this.encrypter = encrypter;
    this.decrypter = decrypter;
  }

  static async create(config: EncryptionConfig): Promise<RunCipher> {
    const encrypter = new Encrypter();
    const decrypter = new Decrypter();
    if ('passphrase' in config) {
      encrypter.setPassphrase(config.passphrase);
      decrypter.addPassphrase(config.passphrase);
    } else {
      for (const recipient of config.recipients) encrypter.addRecipient(recipient);
      const runKey = await generateX25519Identity();
      encrypter.addRecipient(await identityToRecipient(runKey));
      decrypter.addIdentity(runKey);
    }
    return new RunCipher(encrypter, decrypter);
  }

  encryptor(): Duplex {
    return encryptingStream(this.encrypter);
  }

  /** The plaintext of a file this run wrote. */
  open(path: string): Promise<Readable> {
    return decryptingStream(path, this.decrypter, path);
  }
}

/** Decrypts files for restore, verify and drills, with ENCRYPTION_IDENTITY_FILE and/or the passphrase. */
export function fileDecrypter(config: DecryptionConfig | undefined, what: string): (path: string) => Promise<Readable> {
  if (config === undefined) {
    throw new UsageError(`${what} is encrypted: set ENCRYPTION_IDENTITY_FILE (an age identity) or ENCRYPTION_PASSPHRASE to decrypt it`);
  }
  const decrypter = new Decrypter();
  for (const identity of config.identities) decrypter.addIdentity(identity);
  if (config.passphrase !== undefined) decrypter.addPassphrase(config.passphrase);
  return (path) => decryptingStream(path, decrypter, path);
}
