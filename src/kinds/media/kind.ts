import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { RunError, UsageError, describe, firstLine } from '../../errors.ts';
import { withCleanup } from '../../util/cleanup.ts';
import { timed } from '../../volume/drill-report.ts';
import { drillDirPrefix } from '../../volume/lock.ts';
import type { Kind } from '../kind.ts';
import type { MediaArtifact } from './artifact.ts';
import { restoreFolder } from './restore.ts';
import { COMPRESS_FLAG, MediaSource, measureTree } from './tarball.ts';

async function folderHasContent(path: string): Promise<boolean> {
  return (await readdir(path).catch(() => [])).length > 0;
}

/** One media folder: a GNU tar archive; restored through a staging folder and a journaled swap. */
export const mediaKind: Kind<MediaArtifact> = {
  name: 'media',
  noun: 'media tarball',
  needsServer: false,
  retarget: { flag: '--target-dir', value: (o) => o.targetDir },

  sources: async ({ config, log }) => config.media.map((folder) => new MediaSource(folder, config.mediaExclude, config.mediaCompression, log)),

  plainFile: async (path) => path,

  async check(path, artifact) {
    // A full read of the archive: decompression and every tar header.
    const listing = await execa('tar', ['--list', `--file=${path}`, COMPRESS_FLAG[artifact.compression]], { reject: false, buffer: { stdout: false }, stdout: 'ignore' });
    if (listing.exitCode !== 0) throw new RunError(`tar cannot read it: ${firstLine(listing.stderr).replace(/^tar: /, '')}`);
    return 'archive reads to the end';
  },

  /** Unpacks the tarball into a temporary folder (removed by its cleanup) and compares entries, files and bytes with the manifest. */
  drill: async (path, artifact, { ctx }) => [
    await timed(`unpack ${artifact.file}`, () =>
      withCleanup(ctx.log, async (cleanup) => {
        const dir = await mkdtemp(join(tmpdir(), drillDirPrefix(ctx.config.backupDir)));
        cleanup.add(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
        const args = ['--extract', `--file=${path}`, `--directory=${dir}`, COMPRESS_FLAG[artifact.compression]];
        const result = await execa('tar', args, { reject: false, cancelSignal: ctx.signal });
        if (result.isCanceled) throw new RunError(`stopped: ${describe(ctx.signal?.reason)}`);
        if (result.exitCode !== 0) throw new RunError(`tar cannot unpack it: ${firstLine(result.stderr).replace(/^tar: /, '')}`);
        const got = await measureTree(dir);
        const differences: string[] = [];
        if (got.entries !== artifact.entries) differences.push(`${got.entries} entries, the manifest says ${artifact.entries}`);
        if (artifact.files !== undefined && got.files !== artifact.files) differences.push(`${got.files} files, the manifest says ${artifact.files}`);
        if (artifact.bytes !== undefined && got.bytes !== artifact.bytes) differences.push(`${got.bytes} bytes of files, the manifest says ${artifact.bytes}`);
        if (differences.length > 0) throw new RunError(`does not match the manifest: ${differences.join('; ')}`);
        return `${got.entries} entries, ${got.files} files, ${got.bytes} bytes, as in the manifest`;
      }),
    ),
  ],

  restoreTarget(artifact, ctx, options) {
    const folder = options.targetDir ?? ctx.config.media.find((m) => m.name === artifact.source)?.path;
    if (folder === undefined) throw new UsageError(`media "${artifact.source}" is not in MEDIA_PATHS: add ${artifact.source}:/its/path there or pass --target-dir`);
    return folder;
  },
  describeTarget: (plan) => `folder ${plan.target}`,
  confirmWord: (plan) => plan.artifact.source,
  prepare: async () => {},
  // No MEDIA_EXCLUDE: the copy must bring back exactly what was there.
  safetySource: async (plan, { ctx }) =>
    (await folderHasContent(plan.target)) ? new MediaSource({ name: plan.artifact.source, path: plan.target }, [], ctx.config.mediaCompression, ctx.log) : undefined,
  restore: async (plan, { ctx, cleanup, journal }) => restoreFolder(plan.path, plan.artifact, plan.target, ctx.log, cleanup, journal, ctx.signal, ctx.follow),
};
