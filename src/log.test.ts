import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { prettyStream } from './log.js';

/** Records logged through the pretty stream, as a terminal would receive them. */
function prettyLog(colorize: boolean, write: (log: pino.Logger) => void): string {
  let text = '';
  const out = { write: (s: string) => ((text += s), true) } as unknown as NodeJS.WritableStream;
  write(pino({ name: 'kiver' }, prettyStream(out, colorize)));
  return text;
}

const EVIL = '10.0.0.7\u001b[2J\n[2026-01-01 00:00:00.000] INFO (kiver): forged\u009b31m\r';

function logEvil(log: pino.Logger): void {
  log.warn({ node: 'n1', address: EVIL, nested: { event: `x${EVIL}` } }, `node n1 at ${EVIL} is NotReady`);
  const err = new Error(`boom ${EVIL}`);
  log.error({ err }, 'report failed');
  log.info('done');
}

describe('pretty logs', () => {
  it('one line per record (plus an error\'s indented stack); untrusted text cannot drive the terminal or forge a line', () => {
    const text = prettyLog(false, logEvil);
    assert.doesNotMatch(text, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, 'no control character but line breaks');
    const records = text.split('\n').filter((l) => /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] /.test(l));
    assert.deepEqual(records.map((l) => / (\w+) \(kiver\): (.*)$/.exec(l)?.slice(1, 3)[0]), ['WARN', 'ERROR', 'INFO']);
    assert.match(records[0], /node n1 at 10\.0\.0\.7\\x1b\[2J\\n\[2026-01-01 00:00:00\.000\] INFO \(kiver\): forged\\x9b31m\\r is NotReady$/);
    assert.match(text, /address: "10\.0\.0\.7\\u001b\[2J\\n/, 'fields are printed as JSON');
    assert.match(text, /\n +Error: boom 10\.0\.0\.7\\x1b\[2J\n +\[2026/, 'a stack keeps its lines, indented');
  });

  it('coloured: only its own colour codes reach the terminal', () => {
    const text = prettyLog(true, logEvil);
    assert.match(text, /\u001b\[3\dm/, 'levels are coloured');
    const bare = text.replace(/\u001b\[[0-9;]*m/g, '');
    assert.doesNotMatch(bare, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    assert.ok(!text.includes('\u001b[2J'));
  });
});
