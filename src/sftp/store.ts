import { PassThrough, type Readable, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import Client from 'ssh2-sftp-client';
import type { RetentionPolicy, SftpConfig } from '../config/config.ts';
import { RunError, UsageError, describe } from '../errors.ts';
import type { Logger } from '../log.ts';
import { MANIFEST, RUN_TIERS, SIGNATURE, WAL_DIR, WAL_FILE, isRunFile, parseRunId, walKey, type RunTier } from '../naming.ts';
import type { OffsiteStore, RemoteFile, RemoteRef, RemoteRun, UploadSink } from '../offsite/store.ts';

/** A connection, and a promise that rejects when it is lost (a cut, a reset, keepalives unanswered). */
interface Session {
  client: Client;
  gone: Promise<never>;
}

/** Every file is written under this suffix and renamed when complete: no half file ever looks whole. */
const PARTIAL = '.partial';
/** An unused connection is closed after this long (the daemon keeps a store for a whole job). */
const IDLE_MS = 5_000;

/**
 * The remote target on an SSH server, over SFTP (ssh2, no `sftp` binary): <SFTP_PATH>/<tier>/<run-id>/
 * <file>, like the volume and S3. The server's host key must match SFTP_HOST_KEY before anything is sent.
 */
export class SftpStore implements OffsiteStore {
  readonly url: string;
  private readonly cfg: SftpConfig;
  private readonly log: Logger;
  private session: Promise<Session> | undefined;
  private busy = 0;
  private idle: NodeJS.Timeout | undefined;
  private readonly folders = new Map<string, Promise<void>>();

  constructor(cfg: SftpConfig, log: Logger) {
    this.cfg = cfg;
    this.log = log;
    this.url = `sftp://${cfg.host}:${cfg.port}${cfg.path === '.' ? '' : `/${cfg.path.replace(/^\/+/, '')}`}`;
  }

  get retention(): RetentionPolicy {
    return this.cfg.retention;
  }

  parseRef(ref: string): RemoteRef | undefined {
    if (!ref.startsWith('sftp://')) return undefined;
    const hint = `expected ${this.url}/<tier>/<run-id>[/<file>]`;
    const m = /^sftp:\/\/([^/:]+)(?::(\d+))?(\/.*)?$/.exec(ref);
    if (m === null || m[1] !== this.cfg.host || Number(m[2] ?? 22) !== this.cfg.port) {
      throw new UsageError(`"${ref}" is not on the configured SFTP server: ${hint}`);
    }
    const base = this.url.slice(`sftp://${this.cfg.host}:${this.cfg.port}`.length);
    const rest = (m[3] ?? '').replace(/\/+$/, '');
    if (!rest.startsWith(`${base}/`)) throw new UsageError(`"${ref}" is not under SFTP_PATH: ${hint}`);
    const [tier, id, file, ...more] = rest.slice(base.length + 1).split('/');
    if (more.length > 0 || !(RUN_TIERS as readonly string[]).includes(tier ?? '') || parseRunId(id ?? '') === undefined || (file !== undefined && !isRunFile(file))) {
      throw new UsageError(`"${ref}" is not a run or file of backup-sidecar: ${hint}`);
    }
    return { tier: tier as RunTier, id: id!, file: file === MANIFEST ? undefined : file };
  }

  keyOf(tier: RunTier, runId: string, file: string): string {
    return this.pathOf(tier, runId, file);
  }

  private pathOf(...parts: string[]): string {
    return [...(this.cfg.path === '.' ? [] : [this.cfg.path]), ...parts].join('/') || '.';
  }

  /** Runs `work` on the shared session (connecting first), which is closed once idle. */
  private async use<T>(what: string, work: (sftp: Client) => Promise<T>): Promise<T> {
    this.busy += 1;
    clearTimeout(this.idle);
    try {
      const { client, gone } = await this.connect();
      // Streams of a lost connection may never settle on their own: the loss ends the work.
      return await Promise.race([work(client), gone]);
    } catch (error) {
      throw this.problem(error, what);
    } finally {
      this.busy -= 1;
      if (this.busy === 0) {
        this.idle = setTimeout(() => void this.close(), IDLE_MS);
        this.idle.unref();
      }
    }
  }

  private connect(): Promise<Session> {
    this.session ??= (async () => {
      let lost: (error: unknown) => void = () => undefined;
      const gone = new Promise<never>((_, reject) => {
        lost = reject;
      });
      gone.catch(() => undefined);
      // Our own listeners replace the library's, which would print to the console.
      const client = new Client('backup-sidecar', {
        error: (error: unknown) => lost(error),
        end: () => lost(new Error('the connection ended')),
        close: () => {
          this.session = undefined;
          lost(new Error('the connection was closed'));
        },
      });
      const { cfg } = this;
      let refused = false;
      try {
        await client.connect({
          host: cfg.host,
          port: cfg.port,
          username: cfg.user,
          ...(cfg.password === undefined ? {} : { password: cfg.password }),
          ...(cfg.privateKey === undefined ? {} : { privateKey: cfg.privateKey, passphrase: cfg.passphrase }),
          readyTimeout: cfg.timeoutMs,
          // A silent server is given up on after about SFTP_TIMEOUT.
          keepaliveInterval: Math.max(1000, Math.floor(cfg.timeoutMs / 3)),
          keepaliveCountMax: 3,
          hostVerifier: (key: Buffer) => {
            if (cfg.hostKey === 'any') return true;
            refused = !key.equals(cfg.hostKey.key);
            return !refused;
          },
        });
      } catch (error) {
        this.session = undefined;
        if (refused) {
          throw new RunError(`${this.url}: the server's host key does not match SFTP_HOST_KEY; refused before anything was sent (a different server, or its key changed: check with ssh-keyscan)`);
        }
        throw error;
      }
      if (cfg.hostKey === 'any') this.log.warn({ target: this.url }, 'SFTP_HOST_KEY=any: the server is not authenticated; pin its key');
      return { client, gone };
    })();
    return this.session;
  }

  private async close(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    if (session !== undefined) await (await session.catch(() => undefined))?.client.end().catch(() => undefined);
  }

  /** A one-line explanation of an SFTP failure, with what to do. */
  private problem(error: unknown, what: string): RunError {
    if (error instanceof RunError) return error;
    const e = error as { code?: string; level?: string; message?: string };
    const message = (e.message ?? String(error)).split('\n')[0]!.replace(/^[a-zA-Z]+: /, '');
    let why: string;
    if (e.code === 'ECONNREFUSED' || e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN' || e.code === 'ETIMEDOUT') why = `cannot reach the server (${e.code}): check SFTP_HOST and SFTP_PORT`;
    else if (e.level === 'client-authentication' || /authentication/i.test(message)) why = 'the server rejected the login: check SFTP_USER and SFTP_PASSWORD or SFTP_IDENTITY_FILE';
    else if (/timed out|keepalive|connection (ended|was closed)|ECONNRESET/i.test(message) || e.code === 'ECONNRESET') why = `the connection was lost (${message}); the next run uploads what is missing`;
    else if (/timed out/i.test(message)) why = `the server went silent (SFTP_TIMEOUT ${this.cfg.timeoutMs / 1000} s)`;
    else why = message;
    return new RunError(`SFTP ${what} at ${this.url} failed: ${why}`);
  }

  async check(): Promise<void> {
    await this.use('checking the folder', async (sftp) => {
      await sftp.mkdir(this.pathOf(), true);
    });
  }

  /** Makes a run's folder once, however many uploads into it start at once (POSTGRES_PARALLEL). */
  private runFolder(sftp: Client, tier: RunTier, runId: string): Promise<void> {
    const dir = this.pathOf(tier, runId);
    let made = this.folders.get(dir);
    if (made === undefined) {
      made = sftp.mkdir(dir, true).then(() => undefined);
      this.folders.set(dir, made);
      made.catch(() => this.folders.delete(dir));
    }
    return made;
  }

  upload(tier: RunTier, runId: string, file: string): UploadSink {
    const path = this.pathOf(tier, runId, file);
    const body = new PassThrough();
    let remote: Writable | undefined;
    // Opened once the folder exists; the body buffers until then (backpressure holds the writer).
    const opened = this.use(`upload of ${path}`, async (sftp) => {
      await this.runFolder(sftp, tier, runId);
      remote = sftp.createWriteStream(`${path}${PARTIAL}`, { flags: 'w', mode: 0o600 });
      body.pipe(remote);
      await finished(remote);
    });
    const failed = opened.then(
      () => new Promise<never>(() => undefined),
      (error: unknown) => {
        throw this.problem(error, `upload of ${path}`);
      },
    );
    failed.catch(() => undefined);
    return {
      stream: body,
      failed,
      complete: async (_sha256, size) => {
        await opened.catch((error: unknown) => {
          throw this.problem(error, `upload of ${path}`);
        });
        await this.use(`finishing ${path}`, async (sftp) => {
          const stored = (await sftp.stat(`${path}${PARTIAL}`)).size;
          if (stored !== size) throw new RunError(`${this.url} holds ${stored} bytes of ${path} but ${size} were sent; it will be uploaded again by the next run`);
          await sftp.posixRename(`${path}${PARTIAL}`, path);
        });
      },
      abort: async (reason) => {
        body.destroy(reason);
        remote?.destroy(reason);
        await opened.catch(() => undefined);
        await this.use(`removing ${path}${PARTIAL}`, (sftp) => sftp.delete(`${path}${PARTIAL}`, true)).catch(() => undefined);
      },
    };
  }

  async putManifest(tier: RunTier, runId: string, body: string, signature: string | undefined): Promise<void> {
    const put = (file: string, text: string) =>
      this.use(`upload of ${this.pathOf(tier, runId, file)}`, async (sftp) => {
        const path = this.pathOf(tier, runId, file);
        await this.runFolder(sftp, tier, runId);
        await sftp.put(Buffer.from(text), `${path}${PARTIAL}`, { writeStreamOptions: { mode: 0o600 } });
        await sftp.posixRename(`${path}${PARTIAL}`, path);
      });
    if (signature !== undefined) await put(SIGNATURE, signature);
    await put(MANIFEST, body);
  }

  async listRuns(): Promise<RemoteRun[]> {
    return this.use('listing the runs', async (sftp) => {
      const runs: RemoteRun[] = [];
      const names = async (path: string) => ((await sftp.exists(path)) === 'd' ? await sftp.list(path) : []);
      for (const tier of RUN_TIERS) {
        for (const dir of await names(this.pathOf(tier))) {
          const parsed = parseRunId(dir.name);
          if (dir.type !== 'd' || parsed === undefined) continue;
          const files: RemoteFile[] = (await names(this.pathOf(tier, dir.name)))
            .filter((f) => f.type === '-')
            .map((f) => ({ file: f.name, key: this.pathOf(tier, dir.name, f.name), size: f.size }));
          runs.push({ id: dir.name, tier, time: parsed.time, complete: files.some((f) => f.file === MANIFEST), files });
        }
      }
      return runs.sort((a, b) => b.id.localeCompare(a.id));
    });
  }

  async getManifestText(tier: RunTier, runId: string): Promise<string> {
    return this.use(`reading ${this.pathOf(tier, runId, MANIFEST)}`, async (sftp) => (await sftp.get(this.pathOf(tier, runId, MANIFEST))).toString('utf8'));
  }

  async getSignature(tier: RunTier, runId: string): Promise<string | undefined> {
    const path = this.pathOf(tier, runId, SIGNATURE);
    return this.use(`reading ${path}`, async (sftp) => ((await sftp.exists(path)) === '-' ? (await sftp.get(path)).toString('utf8') : undefined));
  }

  async download(tier: RunTier, runId: string, file: string): Promise<{ stream: Readable; sha256: string | undefined }> {
    return this.read(this.pathOf(tier, runId, file));
  }

  async getWal(file: string): Promise<{ stream: Readable; sha256: string | undefined }> {
    return this.read(this.pathOf(walKey('', file)));
  }

  async listWal(): Promise<string[]> {
    return this.use('listing the WAL', async (sftp) => {
      const files: string[] = [];
      if ((await sftp.exists(this.pathOf(WAL_DIR))) !== 'd') return files;
      // Plain files only, in timeline folders only: a link or a stray name is never read.
      for (const dir of await sftp.list(this.pathOf(WAL_DIR))) {
        if (dir.type !== 'd' || !/^[0-9A-F]{8}$/.test(dir.name)) continue;
        for (const f of await sftp.list(this.pathOf(WAL_DIR, dir.name))) if (f.type === '-' && WAL_FILE.test(f.name) && f.name.startsWith(dir.name)) files.push(f.name);
      }
      return files.sort();
    });
  }

  private async read(path: string): Promise<{ stream: Readable; sha256: string | undefined }> {
    const out = new PassThrough();
    // The session stays in use until the whole file has been read.
    void this.use(`download of ${path}`, async (sftp) => {
      const source = sftp.createReadStream(path);
      source.pipe(out);
      await finished(source);
    }).catch((error: unknown) => out.destroy(this.problem(error, `download of ${path}`)));
    return { stream: out, sha256: undefined };
  }

  async deleteRuns(runs: RemoteRun[]): Promise<number> {
    let deleted = 0;
    for (const run of runs) {
      // The manifest first: a run interrupted half-way through deletion then reads as incomplete.
      const files = [...run.files.filter((f) => f.file === MANIFEST), ...run.files.filter((f) => f.file !== MANIFEST)];
      await this.use(`deleting run ${run.tier}/${run.id}`, async (sftp) => {
        for (const f of files) {
          await sftp.delete(this.pathOf(run.tier, run.id, f.file), true);
          deleted += 1;
        }
        await sftp.rmdir(this.pathOf(run.tier, run.id), true).catch((error: unknown) => this.log.debug({ err: describe(error) }, 'run folder not removed'));
      });
    }
    return deleted;
  }

  async putWal(file: string, path: string, _sha256: string, size: number): Promise<void> {
    const to = this.pathOf(walKey('', file));
    await this.use(`upload of ${to}`, async (sftp) => {
      await sftp.mkdir(this.pathOf(WAL_DIR, file.slice(0, 8)), true);
      await sftp.fastPut(path, `${to}${PARTIAL}`, { mode: 0o600 });
      const stored = (await sftp.stat(`${to}${PARTIAL}`)).size;
      if (stored !== size) throw new RunError(`${this.url} holds ${stored} bytes of ${to} but ${size} were sent`);
      await sftp.posixRename(`${to}${PARTIAL}`, to);
    });
  }

  async deleteWal(files: string[]): Promise<void> {
    for (const file of files) await this.use(`deleting ${this.pathOf(walKey('', file))}`, (sftp) => sftp.delete(this.pathOf(walKey('', file)), true));
  }
}
