import type { Readable } from 'node:stream';
import type { BaseBackupArtifact, GlobalsArtifact, MediaArtifact, PostgresArtifact } from '../manifest.ts';

type Common = 'file' | 'source' | 'size' | 'sha256' | 'encryption';
/** What a source knows about its artifact, beyond name, size and checksum. */
export type ArtifactDetails = Omit<PostgresArtifact, Common> | Omit<MediaArtifact, Common> | Omit<GlobalsArtifact, Common> | Omit<BaseBackupArtifact, Common>;

/** An artifact being produced: a byte stream plus the producer's fate. */
export interface Production {
  stream: Readable;
  /** Settles when the producer has exited; rejects with a one-line RunError. */
  done: Promise<void>;
  /** Stops the producer at once (a sink failed). */
  abort(): void;
  /** Checks the artifact as written (read back as plaintext through `read`) and describes it for the manifest. */
  describe(read: () => Promise<Readable>): Promise<ArtifactDetails>;
}

/** Something to back up: one database, one media folder, the roles, the whole cluster (a base backup). */
export interface BackupSource {
  readonly kind: 'postgres' | 'media' | 'globals' | 'basebackup';
  /** Database or media name. */
  readonly name: string;
  readonly fileName: string;
  open(): Promise<Production>;
}
