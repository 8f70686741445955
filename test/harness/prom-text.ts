/** Reading Prometheus text exposition in tests. */

/** The value of the one sample of `name` whose labels include all of `match`. */
export function sample(text: string, name: string, match: Record<string, string>): { labels: Record<string, string>; value: number } | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const m = /^[^{]+\{(.*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of m[1].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    if (Object.entries(match).every(([k, v]) => labels[k] === v)) return { labels, value: Number(m[2]) };
  }
  return undefined;
}

