import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { PassThrough, Transform, type Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  paginateListObjectsV2,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { RetentionPolicy, S3Config } from '../config/config.ts';
import { RunError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { MANIFEST, SIGNATURE, WAL_FILE, objectKey, parseObjectKey, walKey, walPrefix, type RunTier } from '../naming.ts';
import type { OffsiteStore, RemoteRef, RemoteRun, UploadSink } from '../offsite/store.ts';
import { parseS3Url } from './ref.ts';
import { createS3Client, s3Problem } from './client.ts';
import { MAX_PART_SIZE, partSizeFor } from './part-size.ts';

/** DeleteObjects takes at most this many keys a call. */
const DELETE_BATCH = 1000;
/** The offsite store on S3 or an S3-compatible server. */
export class S3Store implements OffsiteStore {
  readonly url: string;
  private readonly s3: S3Config;
  private readonly client: S3Client;
  private readonly log: Logger;

  constructor(s3: S3Config, log: Logger, client: S3Client = createS3Client(s3)) {
    this.s3 = s3;
    this.client = client;
    this.log = log;
    this.url = `s3://${s3.bucket}${s3.prefix === '' ? '' : `/${s3.prefix}`}`;
  }

  get retention(): RetentionPolicy {
    return this.s3.retention;
  }

  parseRef(ref: string): RemoteRef | undefined {
    return ref.startsWith('s3://') ? parseS3Url(ref, this.s3) : undefined;
  }

  keyOf(tier: RunTier, runId: string, file: string): string {
    return objectKey(this.s3.prefix, tier, runId, file);
  }

  /** Storage class and encryption, for every object this tool writes. */
  private storage(withClass: boolean) {
    return {
      ...(withClass && this.s3.storageClass !== undefined ? { StorageClass: this.s3.storageClass } : {}),
      ...(this.s3.sse === undefined ? {} : { ServerSideEncryption: this.s3.sse }),
      ...(this.s3.sseKmsKeyId === undefined ? {} : { SSEKMSKeyId: this.s3.sseKmsKeyId }),
    };
  }

  private async send<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw s3Problem(error, what, this.s3);
    }
  }

  async check(): Promise<void> {
    await this.send(`checking bucket ${this.s3.bucket}`, () => this.client.send(new HeadBucketCommand({ Bucket: this.s3.bucket })));
  }

  upload(tier: RunTier, runId: string, file: string, options: { expectedSize: number; sha256?: string }): UploadSink {
    const key = this.keyOf(tier, runId, file);
    const partSize = partSizeFor(options.expectedSize, this.s3.partSize, this.s3.maxParts);
    const maxParts = this.s3.maxParts;
    const capacity = partSize * maxParts;
    let sent = 0;
    // Stops before the part limit: the local run goes on, and the next run uploads the file from disk
    // with a part size chosen from its real size.
    const body = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        sent += chunk.length;
        if (sent > capacity) {
          callback(new RunError(`${file} outgrew ${capacity} bytes (${maxParts} parts of ${partSize}); it will be uploaded from disk by the next run`));
        } else callback(null, chunk);
      },
    });
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.s3.bucket,
        Key: key,
        Body: body,
        ContentType: 'application/octet-stream',
        ...(options.sha256 === undefined ? {} : { Metadata: { sha256: options.sha256 } }),
        ...this.storage(true),
      },
      partSize,
      queueSize: this.s3.queueSize,
      leavePartsOnError: false,
    });
    this.log.debug({ key, partSize, capacity }, 'upload started');
    const done = upload.done();
    const failed = done.then(
      () => new Promise<never>(() => undefined),
      (error: unknown) => {
        throw s3Problem(error, `upload of ${key}`, this.s3);
      },
    );
    failed.catch(() => undefined);
    return {
      stream: body,
      failed,
      complete: async (sha256, size) => {
        await this.send(`upload of ${key}`, () => done);
        this.log.debug({ key, bytes: size }, 'upload complete');
        await this.checkStored(key, sha256, size);
      },
      abort: async (reason) => {
        // An errored body ends lib-storage's reader, which then aborts the multipart upload (no orphan parts).
        body.destroy(reason);
        // A part request in flight (a stalled connection) is cancelled too, rather than waited for.
        await upload.abort().catch(() => undefined);
        await done.catch(() => undefined);
      },
    };
  }

  /**
   * Checks the stored size (and a sha256 the object was created with, on a catch-up upload). The sha256
   * of a streamed upload is known only at its end, too late for S3's metadata; the manifest, uploaded
   * last and signed with BACKUP_SIGNING_KEY, carries every checksum, and downloads are checked against it.
   */
  private async checkStored(key: string, sha256: string, size: number): Promise<void> {
    const head = await this.send(`checking ${key}`, () => this.client.send(new HeadObjectCommand({ Bucket: this.s3.bucket, Key: key })));
    if (head.ContentLength !== size) {
      throw new RunError(`S3 holds ${head.ContentLength} bytes of ${key} but ${size} were sent; it will be uploaded again by the next run`);
    }
    const stored = head.Metadata?.sha256;
    if (stored !== undefined && stored !== sha256) throw new RunError(`S3 object ${key} carries sha256 ${stored}, the manifest says ${sha256}`);
  }

  async putManifest(tier: RunTier, runId: string, body: string, signature: string | undefined): Promise<void> {
    if (signature !== undefined) {
      const sigKey = this.keyOf(tier, runId, SIGNATURE);
      await this.send(`upload of ${sigKey}`, () =>
        this.client.send(new PutObjectCommand({ Bucket: this.s3.bucket, Key: sigKey, Body: signature, ContentType: 'text/plain', ...this.storage(false) })),
      );
    }
    const key = this.keyOf(tier, runId, MANIFEST);
    const sha256 = createHash('sha256').update(body).digest('hex');
    await this.send(`upload of ${key}`, () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.s3.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/json',
          Metadata: { sha256 },
          // Manifests stay in the default class: listing and choosing a run must not wait for a thaw.
          ...this.storage(false),
        }),
      ),
    );
  }

  async listRuns(): Promise<RemoteRun[]> {
    const runs = new Map<string, RemoteRun>();
    const Prefix = this.s3.prefix === '' ? undefined : `${this.s3.prefix}/`;
    await this.send(`listing ${this.url}`, async () => {
      for await (const page of paginateListObjectsV2({ client: this.client }, { Bucket: this.s3.bucket, Prefix })) {
        for (const object of page.Contents ?? []) {
          const parsed = object.Key === undefined ? undefined : parseObjectKey(this.s3.prefix, object.Key);
          if (parsed === undefined) continue;
          const id = `${parsed.tier}/${parsed.run.id}`;
          let run = runs.get(id);
          if (run === undefined) {
            run = { id: parsed.run.id, tier: parsed.tier, time: parsed.run.time, complete: false, files: [] };
            runs.set(id, run);
          }
          if (parsed.file === MANIFEST) run.complete = true;
          run.files.push({ file: parsed.file, key: object.Key!, size: object.Size ?? 0 });
        }
      }
    });
    return [...runs.values()].sort((a, b) => b.time.getTime() - a.time.getTime() || b.id.localeCompare(a.id));
  }

  async getManifestText(tier: RunTier, runId: string): Promise<string> {
    const key = this.keyOf(tier, runId, MANIFEST);
    return this.send(`reading ${key}`, async () => {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.s3.bucket, Key: key }));
      return out.Body!.transformToString('utf8');
    });
  }

  async getSignature(tier: RunTier, runId: string): Promise<string | undefined> {
    const key = this.keyOf(tier, runId, SIGNATURE);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.s3.bucket, Key: key }));
      return await out.Body!.transformToString('utf8');
    } catch (error) {
      const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) return undefined;
      throw s3Problem(error, `reading ${key}`, this.s3);
    }
  }

  async download(tier: RunTier, runId: string, file: string): Promise<{ stream: Readable; sha256: string | undefined }> {
    return this.get(this.keyOf(tier, runId, file));
  }

  async getWal(file: string): Promise<{ stream: Readable; sha256: string | undefined }> {
    return this.get(walKey(this.s3.prefix, file));
  }

  async listWal(): Promise<string[]> {
    const files: string[] = [];
    await this.send(`listing the WAL in ${this.url}`, async () => {
      for await (const page of paginateListObjectsV2({ client: this.client }, { Bucket: this.s3.bucket, Prefix: walPrefix(this.s3.prefix) })) {
        for (const object of page.Contents ?? []) {
          const file = object.Key?.split('/').at(-1) ?? '';
          if (WAL_FILE.test(file) && object.Key === walKey(this.s3.prefix, file)) files.push(file);
        }
      }
    });
    return files.sort();
  }

  private async get(key: string): Promise<{ stream: Readable; sha256: string | undefined }> {
    const out = await this.send(`download of ${key}`, () => this.client.send(new GetObjectCommand({ Bucket: this.s3.bucket, Key: key })));
    // A body that stalls or breaks half-way fails with the same one-line explanation as a request.
    const body = out.Body as Readable;
    const stream = new PassThrough();
    body.on('error', (error) => stream.destroy(s3Problem(error, `download of ${key}`, this.s3)));
    return { stream: body.pipe(stream), sha256: out.Metadata?.sha256 };
  }

  async deleteRuns(runs: RemoteRun[]): Promise<number> {
    const keys = runs.flatMap((r) => r.files);
    // Manifests go first: a run interrupted half-way through deletion then reads as incomplete.
    const ordered = [...keys.filter((f) => f.file === MANIFEST), ...keys.filter((f) => f.file !== MANIFEST)].map((f) => f.key);
    let deleted = 0;
    for (let i = 0; i < ordered.length; i += DELETE_BATCH) {
      const batch = ordered.slice(i, i + DELETE_BATCH);
      const out = await this.send(`deleting ${batch.length} objects`, () =>
        this.client.send(new DeleteObjectsCommand({ Bucket: this.s3.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } })),
      );
      const errors = out.Errors ?? [];
      if (errors.length > 0) {
        const first = errors[0]!;
        throw new RunError(`S3 refused to delete ${errors.length} of ${batch.length} objects (first: ${first.Key}: ${first.Code} ${first.Message ?? ''})`.trim());
      }
      deleted += batch.length;
    }
    return deleted;
  }

  async putWal(file: string, path: string, sha256: string, size: number): Promise<void> {
    const key = walKey(this.s3.prefix, file);
    await this.send(`upload of ${key}`, () =>
      this.client.send(new PutObjectCommand({ Bucket: this.s3.bucket, Key: key, Body: createReadStream(path), ContentLength: size, Metadata: { sha256 }, ...this.storage(true) })),
    );
    await this.checkStored(key, sha256, size);
  }

  async deleteWal(files: string[]): Promise<void> {
    const keys = files.map((f) => walKey(this.s3.prefix, f));
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      const out = await this.send(`deleting ${batch.length} WAL objects`, () =>
        this.client.send(new DeleteObjectsCommand({ Bucket: this.s3.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } })),
      );
      const first = out.Errors?.[0];
      if (first !== undefined) throw new RunError(`S3 refused to delete ${out.Errors!.length} WAL objects (first: ${first.Key}: ${first.Code})`);
    }
  }
}
