import { resolve } from 'node:path';

/** How folder `a` overlaps folder `b` ("is", "lies inside", "holds"), or undefined when they are apart. Lexical: both come from the operator. */
export function folderOverlap(a: string, b: string): string | undefined {
  const [x, y] = [resolve(a), resolve(b)];
  if (x === y) return 'is';
  if (x.startsWith(`${y === '/' ? '' : y}/`)) return 'lies inside';
  if (y.startsWith(`${x === '/' ? '' : x}/`)) return 'holds';
  return undefined;
}
