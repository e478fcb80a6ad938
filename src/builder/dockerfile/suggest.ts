// "did you mean …?" for misspelt instructions and flags, as BuildKit adds to those errors: the
// closest option within an edit distance of 2, if any (an exact match suggests nothing).

/** The closest option to `value` (edit distance under 3), or undefined. */
export function closest(value: string, options: readonly string[], caseSensitive: boolean): string | undefined {
  const wanted = caseSensitive ? value : value.toLowerCase();
  let best: string | undefined;
  let bestDistance = 3;
  for (const option of options) {
    const candidate = caseSensitive ? option : option.toLowerCase();
    if (candidate === wanted) return undefined;
    const distance = editDistance(wanted, candidate);
    if (distance < bestDistance) {
      best = caseSensitive ? candidate : matchCase(candidate, value);
      bestDistance = distance;
    }
  }
  return best;
}

/** `message` with ` (did you mean X?)` when an option is close to `value`. */
export function withSuggestion(message: string, value: string, options: readonly string[], caseSensitive: boolean): string {
  const match = closest(value, options, caseSensitive);
  return match === undefined ? message : `${message} (did you mean ${match}?)`;
}

/** The suggestion in the case the user wrote: all lower, all upper, or (mixed) lower. */
function matchCase(option: string, written: string): string {
  if (written === written.toUpperCase() && written !== written.toLowerCase()) return option.toUpperCase();
  return option.toLowerCase();
}

/** Levenshtein distance over code points. */
function editDistance(a: string, b: string): number {
  const x = Array.from(a);
  const y = Array.from(b);
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const row = [i];
    for (let j = 1; j <= y.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[y.length];
}
