import type { Readable, Writable } from 'node:stream';
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

/** Where offsite copies go: S3 or an S3-compatible store. Keys mirror the volume's layout. */
export interface OffsiteStore {
  /** s3://bucket/prefix, for messages. */
  readonly url: string;
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
}
