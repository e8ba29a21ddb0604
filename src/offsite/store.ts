import type { Readable, Writable } from 'node:stream';
import type { RetentionPolicy } from '../config/config.ts';
import type { RunTier } from '../naming.ts';

/** One artifact being uploaded while it is written to the volume. */
export interface UploadSink {
  /** Receives the artifact's bytes; ending it lets the upload complete. Errors if the upload fails. */
  readonly stream: Writable;
  /** Rejects (with a one-line RunError) as soon as the upload has failed, so the writer can stop feeding it. */
  readonly failed: Promise<never>;
  /** Waits for the upload to complete, then checks the stored object against what was sent. */
  complete(sha256: string, size: number): Promise<void>;
  /** Gives up on the upload (the local side failed): aborts the multipart upload and waits for that. */
  abort(reason: Error): Promise<void>;
}

export interface RemoteFile {
  file: string;
  key: string;
  size: number;
}

/** A run folder in the offsite store; complete when its manifest is there (it is uploaded last). */
export interface RemoteRun {
  id: string;
  tier: RunTier;
  time: Date;
  complete: boolean;
  files: RemoteFile[];
}

/** A run, or one file of it, named by a remote target's own URL (s3://..., sftp://...). */
export interface RemoteRef {
  tier: RunTier;
  id: string;
  file: string | undefined;
}

/**
 * A remote target that offsite copies go to (S3, SFTP), beside the volume. Paths mirror the volume's
 * layout: <base>/<tier>/<run-id>/<file>. Every target the configuration names is in the list that
 * `remoteTargets` builds, and every workflow (backup, catch-up, prune, list, restore) iterates it.
 */
export interface OffsiteStore {
  /** The target's URL (s3://bucket/prefix, sftp://host:port/path), for messages and manifests. */
  readonly url: string;
  /** Retention in this target (BACKUP_KEEP_* with the target's own overrides). */
  readonly retention: RetentionPolicy;
  /** Parses a URL of this target's scheme (undefined for another scheme); throws a UsageError when it is not one of its runs. */
  parseRef(ref: string): RemoteRef | undefined;
  /** The key (or name) of a run's file in the store. */
  keyOf(tier: RunTier, runId: string, file: string): string;
  /** Fails with a one-line error when the bucket is missing or not accessible. */
  check(): Promise<void>;
  upload(tier: RunTier, runId: string, file: string, options: { expectedSize: number; sha256?: string }): UploadSink;
  /** Uploads the signature first, when there is one, then the manifest (last: it makes the run complete). */
  putManifest(tier: RunTier, runId: string, body: string, signature: string | undefined): Promise<void>;
  /** Every run under the prefix, newest first; keys this tool did not create are ignored. */
  listRuns(): Promise<RemoteRun[]>;
  getManifestText(tier: RunTier, runId: string): Promise<string>;
  /** The run's manifest.json.sig; undefined when there is none. */
  getSignature(tier: RunTier, runId: string): Promise<string | undefined>;
  /** The object's bytes, and the sha256 stored with it when there is one. */
  download(tier: RunTier, runId: string, file: string): Promise<{ stream: Readable; sha256: string | undefined }>;
  /** Deletes the runs' files, manifests first so a half-deleted run reads as incomplete. Returns keys deleted. */
  deleteRuns(runs: RemoteRun[]): Promise<number>;
  /** WAL_ARCHIVE: stores one archived WAL file (`path`, named `file`: <segment>.zst[.age]) as <base>/wal/<timeline>/<file>, complete or not at all. */
  putWal(file: string, path: string, sha256: string, size: number): Promise<void>;
  /** Removes WAL files (retention); one not there is no error. */
  deleteWal(files: string[]): Promise<void>;
  /** The WAL files stored, by name (see WAL_FILE; anything else is ignored), for restore --pitr from this target. */
  listWal(): Promise<string[]>;
  /** One WAL file's bytes, and the sha256 stored with it when there is one. */
  getWal(file: string): Promise<{ stream: Readable; sha256: string | undefined }>;
}
