import type { Command } from 'commander';
import { format, secs, table } from './output.js';
import { InputError } from '../errors.js';
import { buildImage, fmtBytes, listImages, type BuildResult } from '../image/build.js';
import { defaultCacheDir } from '../image/build-plan.js';
import type { BuildProgress } from '../image/build-progress.js';
import { RECIPES } from '../image/catalog.js';

/**
 * Progress on stderr, one line per phase: image, phase, its duration, what it did.
 * On a terminal the running phase shows a live timer on the same line.
 */
function progressPrinter(stream: NodeJS.WriteStream): { onProgress: (p: BuildProgress) => void; stop: () => void } {
  const tty = !!stream.isTTY;
  let open: { text: string; since: number } | undefined;
  let timer: NodeJS.Timeout | undefined;
  const line = (p: BuildProgress, ms: number | undefined, msg: string) =>
    `${p.image.padEnd(8)} ${p.phase.padEnd(9)} ${ms === undefined ? '      ' : secs(ms).padStart(6)}  ${msg}`;
  const clear = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
    if (open && tty) stream.write('\r\x1b[K');
    open = undefined;
  };
  return {
    onProgress(p) {
      if (p.phase === 'done') return; // the result line on stdout says it
      if (p.state === 'start') {
        clear();
        if (!tty) return;
        open = { text: p.message, since: Date.now() };
        const draw = () => open && stream.write(`\r\x1b[K${line(p, Date.now() - open.since, `${open.text} ...`)}`);
        draw();
        timer = setInterval(draw, 1000);
        timer.unref();
        return;
      }
      clear();
      stream.write(`${line(p, p.phaseMs, p.message)}\n`);
    },
    stop: clear,
  };
}

/** `kiver image`: build the images Kiver needs offline from Debian packages; list them. */
export function registerImage(program: Command): void {
  const image = program.command('image').description('images built offline from Debian packages (no registry needed)');

  const build = image
    .command('build')
    .description(
      `build images from the host's apt mirror and load them into Docker as kiver/NAME:<tag> and :latest\n` +
        `(cached: nothing is rebuilt while the recipe and the package snapshot stay the same)\n\n` +
        `images:\n${RECIPES.map((r) => `  ${r.name.padEnd(8)} ${r.description}`).join('\n')}`,
    )
    .argument('<names...>', `image names: ${RECIPES.map((r) => r.name).join(', ')}`)
    .option('--force', 'rebuild even if Docker already has the image (base images stay cached)', false)
    .option('--cache-dir <dir>', `where .debs and root tars are kept (default ${defaultCacheDir()})`);
  build.action(async (names: string[], opts: { force: boolean; cacheDir?: string }, cmd: Command) => {
    for (const n of names) if (!RECIPES.some((r) => r.name === n || `kiver/${r.name}` === n)) {
      throw new InputError(`unknown image "${n}"; known images: ${RECIPES.map((r) => r.name).join(', ')}`, 'name');
    }
    const results: BuildResult[] = [];
    const printer = progressPrinter(process.stderr);
    try {
      for (const n of names) {
        const r = await buildImage(n, { force: opts.force, cacheDir: opts.cacheDir, onProgress: printer.onProgress });
        results.push(r);
      }
    } finally {
      printer.stop();
    }
    if (format(cmd) === 'json') {
      process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      return;
    }
    for (const r of results) {
      process.stdout.write(`${r.ref}  ${r.cached ? 'cached' : `built in ${secs(r.durationMs)}`}  (also ${r.latestRef})\n`);
    }
  });

  const ls = image.command('ls').description('list the images Kiver built (label kiver.image); CREATED is the package snapshot date');
  ls.action(async (_opts: unknown, cmd: Command) => {
    const imgs = await listImages();
    if (format(cmd) === 'json') {
      process.stdout.write(`${JSON.stringify(imgs, null, 2)}\n`);
      return;
    }
    const rows = imgs.map((i) => [i.repo, i.tags.join(',') || '<none>', i.latest ? 'yes' : '', fmtBytes(i.size), i.created.slice(0, 10), i.packages]);
    process.stdout.write(`${table(rows, ['IMAGE', 'TAG', 'LATEST', 'SIZE', 'CREATED', 'PACKAGES'])}\n`);
  });
}
