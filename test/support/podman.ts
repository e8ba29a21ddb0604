import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { ROOT } from './cli.ts';

/**
 * Building and running the image without a Docker engine: rootful podman with runc, on a Debian bookworm
 * base made here with debootstrap (no registry can be reached, so nothing is pulled).
 */
export const PODMAN_ENV = { CONTAINERS_CONF: join(ROOT, 'test/image/containers.conf') };
export const IMAGE = 'localhost/backup-sidecar:test';
/** The base carries this Node's version: a new Node makes a new base, an unchanged one is reused. */
export const BASE_IMAGE = `localhost/backup-sidecar-base:bookworm-node${process.versions.node}`;

const INSTALL_HINT = 'apt-get install -y podman runc uidmap slirp4netns fuse-overlayfs debootstrap (.ci/run does this)';

export interface PodmanResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function podman(args: string[]): Promise<PodmanResult> {
  const result = await execa('podman', args, { env: PODMAN_ENV, reject: false, stdin: 'ignore' });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Fails with what to do, never skips, when podman cannot build or run containers here. */
export async function requirePodman(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the image test needs root: it runs rootful podman and debootstrap');
  const version = await podman(['--version']).catch((error: Error) => ({ exitCode: 127, stdout: '', stderr: error.message }));
  if (version.exitCode !== 0) throw new Error(`podman is not installed or does not start (${version.stderr.split('\n')[0]}): ${INSTALL_HINT}`);
}

/** The first Debian mirror apt uses here (DEBIAN_MIRROR overrides it). */
async function debianMirror(): Promise<string> {
  if (process.env.DEBIAN_MIRROR) return process.env.DEBIAN_MIRROR;
  for (const file of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    const text = await readFile(file, 'utf8').catch(() => '');
    const m = /^(?:URIs:|deb(?:\s+\[[^\]]*\])?)\s+(\S+\/debian)\/?(?:\s|$)/m.exec(text);
    if (m !== null) return m[1]!;
  }
  return 'http://deb.debian.org/debian';
}

/**
 * A local stand-in for node:24-bookworm-slim: Debian bookworm (debootstrap minbase), this Node binary and
 * npm 11 under /usr/local, and this machine's CA bundle (npm in the build must trust what this machine
 * trusts). Made once (about 40 s) and kept in podman's storage, so later runs reuse it.
 */
export async function ensureBaseImage(log: (line: string) => void): Promise<string> {
  if ((await podman(['image', 'exists', BASE_IMAGE])).exitCode === 0) return BASE_IMAGE;
  const rootfs = await mkdtemp('/var/tmp/bsc-rootfs-');
  try {
    const mirror = await debianMirror();
    log(`making ${BASE_IMAGE}: debootstrap bookworm from ${mirror}`);
    const boot = await execa('debootstrap', ['--variant=minbase', 'bookworm', rootfs, mirror], { reject: false, all: true });
    if (boot.exitCode !== 0) throw new Error(`debootstrap failed (${INSTALL_HINT}): ${String(boot.all).split('\n').slice(-3).join(' | ')}`);
    await copyFile(process.execPath, join(rootfs, 'usr/local/bin/node'));
    await execa('chmod', ['0755', join(rootfs, 'usr/local/bin/node')]);
    await execa('npm', ['install', '--global', '--prefix', join(rootfs, 'usr/local'), '--no-audit', '--no-fund', 'npm@11']);
    const changes = ['--change', 'CMD ["node"]'];
    const bundle = process.env.NODE_EXTRA_CA_CERTS ?? '/etc/ssl/certs/ca-certificates.crt';
    await mkdir(join(rootfs, 'etc/ssl/certs'), { recursive: true });
    if (await copyFile(bundle, join(rootfs, 'etc/ssl/certs/ca-certificates.crt')).then(() => true, () => false)) {
      changes.push('--change', 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt');
    }
    await execa('sh', ['-c', `rm -rf "${rootfs}"/var/cache/apt/archives/*.deb "${rootfs}"/var/cache/apt/*.bin "${rootfs}"/var/lib/apt/lists/*`]);
    const tarball = `${rootfs}.tar`;
    await execa('tar', ['-C', rootfs, '-cf', tarball, '.']);
    const result = await podman(['import', ...changes, tarball, BASE_IMAGE]);
    await rm(tarball, { force: true });
    if (result.exitCode !== 0) throw new Error(`podman import failed: ${result.stderr.split('\n').slice(-2).join(' | ')}`);
    return BASE_IMAGE;
  } finally {
    await rm(rootfs, { recursive: true, force: true });
  }
}

/**
 * Builds the image from the repository's Dockerfile on the local base, with Debian's own PostgreSQL
 * client (15) since apt.postgresql.org cannot be reached here, and any further build arguments. Podman's
 * layer cache keeps rebuilds short. Returns the image's size in MB.
 */
export async function buildImage(log: (line: string) => void, tag = IMAGE, buildArgs: Record<string, string> = {}): Promise<number> {
  const base = await ensureBaseImage(log);
  const started = Date.now();
  const args = Object.entries({ BASE_IMAGE: base, PG_MAJORS: '15', PG_APT: 'debian', ...buildArgs }).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]);
  const result = await podman(['build', '--format', 'docker', ...args, '-t', tag, ROOT]);
  if (result.exitCode !== 0) throw new Error(`podman build failed:\n${`${result.stdout}\n${result.stderr}`.split('\n').slice(-25).join('\n')}`);
  const [image, below] = [await imageSize(tag), await imageSize(base)];
  log(`built ${tag} in ${((Date.now() - started) / 1000).toFixed(1)} s: ${image.toFixed(0)} MB, of which ${(image - below).toFixed(0)} MB above the base`);
  return image;
}

async function imageSize(image: string): Promise<number> {
  return Number((await podman(['image', 'inspect', '--format', '{{.Size}}', image])).stdout) / 1e6;
}
