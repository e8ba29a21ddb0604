import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { RunError } from './errors.ts';
import { MANIFEST, RUN_TIERS, artifactFileName, parseRunId } from './naming.ts';

const common = {
  file: z.string(),
  /** Database or media folder name. */
  source: z.string(),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Encrypted (age): size and sha256 above are of the stored file; these of the plaintext. */
  encryption: z
    .object({ format: z.literal('age'), plainSha256: z.string().regex(/^[0-9a-f]{64}$/), plainSize: z.number().int().nonnegative() })
    .nullable()
    .default(null),
};

export const postgresArtifact = z.object({
  ...common,
  kind: z.literal('postgres'),
  format: z.literal('custom'),
  /** pg_dump's -Z setting, or "default" (gzip for the custom format). */
  compression: z.string(),
  tableCount: z.number().int().nonnegative(),
  /** Exact row count of every dumped table, `schema.table` → rows, from the dump's own snapshot. */
  rowCounts: z.record(z.string(), z.number().int().nonnegative()),
  largeObjects: z.number().int().nonnegative(),
});

export const mediaArtifact = z.object({
  ...common,
  kind: z.literal('media'),
  format: z.literal('tar'),
  compression: z.enum(['gzip', 'zstd']),
  /** The folder it was taken from. */
  path: z.string(),
  /** Archive members below the folder root (files, folders, links). */
  entries: z.number().int().nonnegative(),
  /** Regular files among them and the bytes they hold (a hard-linked file counted once); absent before 0.2. */
  files: z.number().int().nonnegative().optional(),
  bytes: z.number().int().nonnegative().optional(),
  /** Files that changed or vanished while being read. */
  warnings: z.array(z.string()),
});

/** Roles and tablespaces (pg_dumpall --globals-only, plain SQL), with POSTGRES_GLOBALS. */
export const globalsArtifact = z.object({
  ...common,
  kind: z.literal('globals'),
  format: z.literal('sql'),
  roles: z.array(z.string()),
  tablespaces: z.array(z.string()),
});

/** Every file name is checked against the naming rules before any file is opened: see artifactFileName. */
export const artifact = z.discriminatedUnion('kind', [postgresArtifact, mediaArtifact, globalsArtifact]).superRefine((a, ctx) => {
  const compression = a.kind === 'media' ? a.compression : '';
  const expected = artifactFileName({ kind: a.kind, source: a.source, compression, encrypted: a.encryption !== null });
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

export type PostgresArtifact = z.infer<typeof postgresArtifact>;
export type MediaArtifact = z.infer<typeof mediaArtifact>;
export type GlobalsArtifact = z.infer<typeof globalsArtifact>;
export type Artifact = z.infer<typeof artifact>;
export type Manifest = z.infer<typeof manifestSchema>;
export type OffsiteState = z.infer<typeof offsiteState>;

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
