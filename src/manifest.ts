import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { RunError } from './errors.ts';
import { AGE_SUFFIX, BASE_BACKUP_FILE, MANIFEST, RUN_TIERS, parseRunId } from './naming.ts';
import type { ArtifactPart } from './kinds/artifact.ts';
import { globalsPart, type GlobalsArtifact } from './kinds/globals/artifact.ts';
import { mediaPart, type MediaArtifact } from './kinds/media/artifact.ts';
import { postgresPart, type PostgresArtifact } from './kinds/postgres/artifact.ts';
import { baseBackupPart, type BaseBackupArtifact } from './kinds/basebackup/artifact.ts';

export type { BaseBackupArtifact, GlobalsArtifact, MediaArtifact, PostgresArtifact };

/** Each kind's part of the manifest (a new kind adds its own here, and its behaviour in kinds/registry.ts). */
const PARTS = [globalsPart, postgresPart, mediaPart, baseBackupPart] as const;

/** Every file name is checked against the naming rules before any file is opened: see ArtifactPart.fileName. */
export const artifact = z.discriminatedUnion('kind', [globalsPart.schema, postgresPart.schema, mediaPart.schema, baseBackupPart.schema]).superRefine((a, ctx) => {
  const name = (PARTS as readonly ArtifactPart[]).find((p) => p.kind === a.kind)?.fileName(a);
  const expected = name === undefined ? undefined : `${name}${a.encryption === null ? '' : AGE_SUFFIX}`;
  if (a.file !== expected) {
    ctx.addIssue({ code: 'custom', path: ['file'], message: `${JSON.stringify(a.file.slice(0, 100))} is not the file backup-sidecar writes for ${a.kind} ${JSON.stringify(a.source.slice(0, 100))}` });
  }
});

/** Whether the run also sits in the offsite store. The manifest is uploaded last, so "complete" means all of it. */
export const offsiteState = z.object({
  url: z.string(),
  state: z.enum(['pending', 'complete', 'failed']),
  at: z.iso.datetime(),
  error: z.string().nullable(),
});

export const manifestSchema = z.object({
  manifestVersion: z.literal(1),
  runId: z.string().refine((id) => parseRunId(id) !== undefined, { message: 'is not a run id (YYYYMMDDTHHMMSSZ[_label])' }),
  tier: z.enum(RUN_TIERS as [string, ...string[]]),
  label: z.string().nullable(),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime(),
  tool: z.object({ name: z.literal('backup-sidecar'), version: z.string() }),
  postgres: z
    .object({
      serverVersion: z.string(),
      pgDumpVersion: z.string(),
      /** Where the chosen client came from, and why. */
      clientBinDir: z.string(),
      clientChoice: z.string(),
    })
    .nullable(),
  artifacts: z.array(artifact).refine((list) => new Set(list.map((a) => a.file)).size === list.length, { message: 'name the same file twice' }),
  warnings: z.array(z.string()),
  /** Null when no remote target was configured for the run; otherwise the whole of `targets`. */
  offsite: offsiteState.nullable().default(null),
  /** Each remote target's own state (runs made before there could be several have only `offsite`). */
  targets: z.array(offsiteState).default([]),
});

export type Artifact = z.infer<typeof artifact>;
export type Manifest = z.infer<typeof manifestSchema>;
export type OffsiteState = z.infer<typeof offsiteState>;

/**
 * Runs come in two series, each with its own tiers, retention and `latest`: dumps (databases, media, roles)
 * and base backups (WAL_ARCHIVE).
 */
export type Series = 'dumps' | 'basebackup';

export function seriesOf(manifest: Manifest): Series {
  return manifest.artifacts.some((a) => a.kind === 'basebackup') ? 'basebackup' : 'dumps';
}

/** The series of a run known only by its file names (a remote listing). */
export function seriesOfFiles(files: readonly string[]): Series {
  return files.some((f) => f === BASE_BACKUP_FILE || f === `${BASE_BACKUP_FILE}${AGE_SUFFIX}`) ? 'basebackup' : 'dumps';
}

/** The state of each remote target of a run. */
export function targetStates(manifest: Manifest): OffsiteState[] {
  if (manifest.targets.length > 0) return manifest.targets;
  return manifest.offsite === null ? [] : [manifest.offsite];
}

/** Sets one target's state, and `offsite` to the whole: complete only when every target is, failed when any is. */
export function setTargetState(manifest: Manifest, state: OffsiteState): void {
  const states = targetStates(manifest);
  const i = states.findIndex((t) => t.url === state.url);
  manifest.targets = i >= 0 ? states.map((t, j) => (j === i ? state : t)) : [...states, state];
  const failed = manifest.targets.find((t) => t.state === 'failed');
  const worst = failed ?? manifest.targets.find((t) => t.state === 'pending') ?? state;
  manifest.offsite =
    manifest.targets.length === 1
      ? manifest.targets[0]!
      : { url: manifest.targets.map((t) => t.url).join(', '), state: worst.state, at: manifest.targets.map((t) => t.at).sort().at(-1)!, error: failed?.error ?? null };
}

export function manifestText(manifest: Manifest): string {
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

/** Reads and validates a run's manifest; with `where`, its run id and tier must be those of the folder it lies in. */
export async function readManifest(runDir: string, where?: { id: string; tier: string }): Promise<Manifest> {
  const path = join(runDir, MANIFEST);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new RunError(
      code === 'ENOENT'
        ? `no ${MANIFEST} in ${runDir}: it is not a complete backup run, so its checksums cannot be checked`
        : `cannot read ${path}: ${code}`,
    );
  }
  return parseManifest(text, path, where);
}

/** Validates a manifest's text; `path` names it in errors; with `expected`, its run id and tier must be those. */
export function parseManifest(text: string, path: string, expected?: { id: string; tier: string }): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new RunError(`${path} is not valid JSON: the manifest is damaged`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RunError(`${path} is not a backup-sidecar manifest: ${issue?.path.join('.')} ${issue?.message}; nothing in the run is used`);
  }
  const m = parsed.data;
  if (expected !== undefined && (m.runId !== expected.id || m.tier !== expected.tier)) {
    throw new RunError(`${path} describes run ${m.tier}/${m.runId.slice(0, 80)}, not ${expected.tier}/${expected.id}: it was moved or forged; nothing in the run is used`);
  }
  return m;
}
