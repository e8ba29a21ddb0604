/** The closest of `names` to `word` (a typo: at most 2 edits, or a third of its length), if any. */
export function closest(word: string, names: string[]): string | undefined {
  const distance = (a: string, b: string) => {
    const row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      let prev = row[0]!;
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const next = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
        prev = row[j]!;
        row[j] = next;
      }
    }
    return row[b.length]!;
  };
  const scored = names.map((n) => ({ n, d: distance(word, n) })).sort((x, y) => x.d - y.d)[0];
  return scored !== undefined && scored.d <= Math.max(2, Math.floor(word.length / 3)) ? scored.n : undefined;
}
