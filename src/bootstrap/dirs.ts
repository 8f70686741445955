/** Directories a node needs, with their modes: created when missing, modes corrected. */
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import type { NodeHost } from './node-host.js';
import type { Step } from './step.js';

export interface DirSpec {
  /** Node path. */
  path: string;
  mode: number;
}

const octal = (m: number) => `0${(m & 0o7777).toString(8)}`;

export function dirsStep(host: NodeHost, dirs: DirSpec[]): Step {
  const todo = (): { d: DirSpec; what: 'create' | 'chmod'; from?: number }[] => {
    const out: { d: DirSpec; what: 'create' | 'chmod'; from?: number }[] = [];
    for (const d of dirs) {
      try {
        const st = statSync(host.path(d.path));
        if ((st.mode & 0o7777) !== d.mode) out.push({ d, what: 'chmod', from: st.mode & 0o7777 });
      } catch {
        out.push({ d, what: 'create' });
      }
    }
    return out;
  };
  const say = (t: ReturnType<typeof todo>[number]) =>
    t.what === 'create' ? `create ${t.d.path} (${octal(t.d.mode)})` : `chmod ${t.d.path} ${octal(t.from ?? 0)} → ${octal(t.d.mode)}`;
  return {
    name: 'dirs',
    async check() {
      return todo().map(say);
    },
    async apply() {
      const list = todo();
      for (const t of list) {
        const p = host.path(t.d.path);
        if (t.what === 'create') mkdirSync(p, { recursive: true, mode: t.d.mode });
        chmodSync(p, t.d.mode); // mkdir's mode is masked by the umask
      }
      return list.map((t) => say(t).replace(/^create/, 'created').replace(/^chmod/, 'changed mode of'));
    },
  };
}
