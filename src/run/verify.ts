import { join } from 'node:path';
import { execa } from 'execa';
import type { Config } from '../config/config.ts';
import { describe, firstLine } from '../errors.ts';
import type { Artifact } from '../manifest.ts';
import { discoverClients, newestClient, type PgClient } from '../pg/clients.ts';
import { checkGlobalsFile } from '../sources/globals.ts';
import { readToc } from '../sources/postgres.ts';
import { hashFile } from '../util/hash.ts';
import { resolveRef } from '../volume/resolve.ts';

export interface ArtifactCheck {
  file: string;
  ok: boolean;
  detail: string;
}

export interface VerifyResult {
  runId: string;
  runDir: string;
  checks: ArtifactCheck[];
}

async function checkOne(path: string, artifact: Artifact, dumpReader: () => Promise<PgClient>): Promise<ArtifactCheck> {
  const fail = (detail: string) => ({ file: artifact.file, ok: false, detail });
  const actual = await hashFile(path).catch(() => undefined);
  if (actual === undefined) return fail('cannot be read');
  if (actual.sha256 !== artifact.sha256) return fail(`sha256 ${actual.sha256} differs from the manifest's ${artifact.sha256}`);
  if (actual.size !== artifact.size) return fail(`${actual.size} bytes, the manifest says ${artifact.size}`);
  if (artifact.kind === 'postgres') {
    try {
      const toc = await readToc(await dumpReader(), path);
      return { file: artifact.file, ok: true, detail: `sha256 ok, pg_restore --list ok (${toc.tables} tables)` };
    } catch (error) {
      return fail((error as Error).message);
    }
  }
  if (artifact.kind === 'globals') {
    return checkGlobalsFile(path, artifact).then(
      (detail) => ({ file: artifact.file, ok: true, detail: `sha256 ok, ${detail}` }),
      (error: unknown) => fail(describe(error)),
    );
  }
  // A full read of the archive: decompression and every tar header.
  const listing = await execa('tar', ['--list', `--file=${path}`, artifact.compression === 'gzip' ? '--gzip' : '--zstd'], {
    reject: false,
    buffer: { stdout: false },
    stdout: 'ignore',
  });
  if (listing.exitCode !== 0) return fail(`tar cannot read it: ${firstLine(listing.stderr).replace(/^tar: /, '')}`);
  return { file: artifact.file, ok: true, detail: 'sha256 ok, archive reads to the end' };
}

/** Checks a run or one artifact without touching any server: sha256, then a full read. */
export async function verify(config: Config, ref: string): Promise<VerifyResult> {
  const selection = await resolveRef(config.backupDir, ref);
  // Any newer pg_restore reads older dumps, so the newest client reads them all, without a server.
  let client: Promise<PgClient> | undefined;
  const dumpReader = () => (client ??= discoverClients(config.postgres?.binDir).then(newestClient));
  const checks: ArtifactCheck[] = [];
  for (const artifact of selection.artifacts) checks.push(await checkOne(join(selection.runDir, artifact.file), artifact, dumpReader));
  return { runId: selection.manifest.runId, runDir: selection.runDir, checks };
}
