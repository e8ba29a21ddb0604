import type { Artifact } from '../manifest.ts';
import { baseBackupKind } from './basebackup/kind.ts';
import { globalsKind } from './globals/kind.ts';
import type { Kind } from './kind.ts';
import { mediaKind } from './media/kind.ts';
import { postgresKind } from './postgres/kind.ts';

export type { Kind };

/**
 * Every kind of artifact, in the order a run produces them and a restore applies them (roles first: the
 * databases' owners and grants refer to them). A new kind is a folder (artifact.ts, kind.ts), its part
 * in manifest.ts, and one line here.
 */
export const KINDS: readonly Kind[] = [globalsKind, postgresKind, mediaKind, baseBackupKind];

/** Artifacts in the registry's order (roles first), as restores apply and drills check them. */
export function inKindOrder<A extends Artifact>(artifacts: readonly A[]): A[] {
  const order = (a: Artifact) => KINDS.indexOf(kindOf(a));
  return [...artifacts].sort((a, b) => order(a) - order(b));
}

/** The kind of an artifact (the manifest's schema admits only known kinds). */
export function kindOf<A extends Artifact>(artifact: A): Kind<A> {
  return KINDS.find((k) => k.name === artifact.kind) as unknown as Kind<A>;
}
