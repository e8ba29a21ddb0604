import { join } from 'node:path';
import type { Context } from '../context.ts';
import { describe, stopped } from '../errors.ts';
import type { CheckTools } from '../kinds/kind.ts';
import { kindOf } from '../kinds/registry.ts';
import type { Artifact } from '../manifest.ts';
import { PARTIAL_DIR } from '../naming.ts';
import { discoverClients, newestClient, type PgClient } from '../pg/clients.ts';
import { withCleanup } from '../util/cleanup.ts';
import { hashFile } from '../util/hash.ts';
import { withVolumeLock } from '../volume/lock.ts';
import { resolveRef, type Selection } from '../volume/resolve.ts';
import { checkRunSignature } from '../volume/signature.ts';
import { decryptSelection } from './decrypt.ts';

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

async function checkOne(path: string, artifact: Artifact, tools: CheckTools): Promise<ArtifactCheck> {
  const fail = (detail: string) => ({ file: artifact.file, ok: false, detail });
  const actual = await hashFile(path).catch(() => undefined);
  if (actual === undefined) return fail('cannot be read');
  if (actual.sha256 !== artifact.sha256) return fail(`sha256 ${actual.sha256} differs from the manifest's ${artifact.sha256}`);
  if (actual.size !== artifact.size) return fail(`${actual.size} bytes, the manifest says ${artifact.size}`);
  return kindOf(artifact).check(path, artifact, tools).then(
    (detail) => ({ file: artifact.file, ok: true, detail: `sha256 ok, ${detail}` }),
    (error: unknown) => {
      stopped(tools.signal);
      return fail(describe(error));
    },
  );
}

/**
 * Checks a run or one artifact without touching any server: sha256, then a full read. An encrypted run
 * is decrypted into .partial/ first (holding the volume lock) (with ENCRYPTION_IDENTITY_FILE or the passphrase); without
 * a key only the stored bytes can be checked.
 */
export async function verify(ctx: Context, ref: string, trustUnsigned = false): Promise<VerifyResult> {
  const { config, log, signal } = ctx;
  const stored = await resolveRef(config.backupDir, ref, ctx.trust(trustUnsigned));
  await checkRunSignature(stored.runDir, `run ${stored.manifest.runId}`, config.signing, trustUnsigned);
  // Any newer pg_restore reads older dumps, so the newest client reads them all, without a server.
  let client: Promise<PgClient> | undefined;
  const tools: CheckTools = { dumpReader: () => (client ??= discoverClients(config.postgres?.binDir).then(newestClient)), signal };
  const result = (checks: ArtifactCheck[]) => ({ runId: stored.manifest.runId, runDir: stored.runDir, checks });
  if (stored.artifacts.every((a) => a.encryption === null)) {
    const checks: ArtifactCheck[] = [];
    for (const artifact of stored.artifacts) {
      stopped(signal);
      checks.push(await checkOne(join(stored.runDir, artifact.file), artifact, tools));
    }
    return result(checks);
  }
  const hashes: ArtifactCheck[] = [];
  for (const artifact of stored.artifacts) {
    const actual = await hashFile(join(stored.runDir, artifact.file)).catch(() => undefined);
    const ok = actual?.sha256 === artifact.sha256 && actual.size === artifact.size;
    hashes.push({ file: artifact.file, ok, detail: ok ? 'sha256 ok (encrypted; set ENCRYPTION_IDENTITY_FILE or ENCRYPTION_PASSPHRASE to check the contents)' : 'sha256 differs from the manifest, or the file cannot be read' });
  }
  if (config.decryption === undefined || hashes.some((c) => !c.ok)) return result(hashes);
  // Plaintext goes only into .partial/, under the lock: if this process is killed, the next command
  // that takes the lock removes it. TMPDIR is cleaned by no one.
  return withVolumeLock(config.backupDir, log, () => withCleanup(log, async (cleanup) => {
    let plain: Selection;
    try {
      plain = await decryptSelection(stored, config.decryption, join(config.backupDir, PARTIAL_DIR), cleanup);
    } catch (error) {
      return result(stored.artifacts.map((a) => ({ file: a.file, ok: false, detail: describe(error) })));
    }
    const checks: ArtifactCheck[] = [];
    for (const [i, artifact] of plain.artifacts.entries()) {
      stopped(signal);
      const check = await checkOne(join(plain.runDir, artifact.file), artifact, tools);
      checks.push({ ...check, file: stored.artifacts[i]!.file, detail: check.ok ? `sha256 ok, decrypted: ${check.detail}` : check.detail });
    }
    return result(checks);
  }), { waitMs: config.lockWaitMs, signal });
}
