import { createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { RunError, describe, firstLine } from '../../errors.ts';
import { FILE_MODE } from '../../util/fs.ts';
import { toolFailure } from '../../pg/psql.ts';

/**
 * zstd around an uncompressed custom-format dump: the zstd binary compresses on every core while pg_dump
 * only streams (its own gzip is single-threaded and the slowest part of every dump), and it reads the
 * dump straight from pg_dump's pipe, so the uncompressed bytes never pass through this process.
 */
export function compressing(input: Readable, level: number) {
  return execa('zstd', ['-q', '-c', `-${level}`, '-T0'], { stdin: input, stdout: 'pipe', buffer: { stdout: false }, encoding: 'buffer', reject: false });
}

/** Why a compressing zstd failed, or undefined when it did not; `what` it compressed, and what else to do when zstd is missing. */
export async function zstdProblem(zstd: ReturnType<typeof compressing>, what: string, otherwise: string): Promise<RunError | undefined> {
  const result = await zstd;
  if ((result as { code?: string }).code === 'ENOENT') return new RunError(`zstd is not installed: install it (Debian: apt-get install zstd) ${otherwise}`);
  return result.exitCode === 0 ? undefined : new RunError(`zstd compressing ${what} failed: ${toolFailure(result)}`);
}

/** The plaintext of a .zst stream, for readers of the table of contents (which may stop early: a broken pipe is fine). */
export function decompressing(input: Readable): Readable {
  const zstd = execa('zstd', ['-d', '-q', '-c'], { stdin: 'pipe', stdout: 'pipe', buffer: { stdout: false }, encoding: 'buffer', reject: false });
  zstd.stdin.on('error', () => undefined);
  input.on('error', () => undefined).pipe(zstd.stdin);
  zstd.stdout.on('close', () => input.destroy());
  return zstd.stdout;
}

/** Decompresses a .zst file into `to` (pg_restore --jobs needs a seekable file). */
export async function decompressFile(path: string, to: string, signal: AbortSignal | undefined): Promise<void> {
  const zstd = execa('zstd', ['-d', '-q', '-c', path], { stdout: 'pipe', buffer: { stdout: false }, encoding: 'buffer', reject: false, cancelSignal: signal });
  try {
    await pipeline(zstd.stdout, createWriteStream(to, { mode: FILE_MODE }));
  } catch (error) {
    zstd.kill();
    throw new RunError(`cannot decompress ${path} into ${to}: ${describe(error)}`);
  }
  const result = await zstd;
  if (result.exitCode !== 0) throw new RunError(`${path} does not decompress: ${firstLine(new TextDecoder().decode(result.stderr)).replace(/^zstd: /, '')}`);
}

/** A full read of a .zst file: every frame decoded and its checksum checked. */
export async function testFile(path: string, signal: AbortSignal | undefined): Promise<void> {
  const result = await execa('zstd', ['-t', '-q', path], { reject: false, cancelSignal: signal });
  if (result.exitCode !== 0) throw new RunError(`zstd cannot read it: ${firstLine(result.stderr).replace(/^zstd: /, '')}`);
}
