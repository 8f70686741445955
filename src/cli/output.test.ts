import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { print, printErr, table } from './output.js';

const EVIL = '10.0.0.7\u001b[2J\nnode-x  Ready  10.0.0.8';

function captured(stream: NodeJS.WriteStream, fn: () => void): string {
  let text = '';
  const m = mock.method(stream, 'write', (s: string) => ((text += s), true));
  try {
    fn();
  } finally {
    m.mock.restore();
  }
  return text;
}

describe('CLI output for people', () => {
  it('a table cell with an escape sequence and a newline stays one visible cell: no cleared screen, no forged row', () => {
    const t = table([['node-1', 'Ready', EVIL], ['node-2', 'NotReady', '10.0.0.9']], ['NAME', 'STATUS', 'ADDRESS']);
    const lines = t.split('\n');
    assert.equal(lines.length, 3);
    assert.equal(lines[1], 'node-1  Ready     10.0.0.7\\x1b[2J\\nnode-x  Ready  10.0.0.8');
    assert.ok(lines[2].startsWith('node-2  NotReady  10.0.0.9'), 'columns are measured on the escaped text');
    assert.doesNotMatch(t, /\u001b/);
  });

  it('print (table mode) and printErr escape what the text holds; JSON output is escaped by JSON', () => {
    const cmd = new Command().option('-o, --output <format>', '', 'table');
    const out = captured(process.stdout, () => print(cmd, { address: EVIL }, () => `Address:  ${EVIL}\nStatus:   Ready`));
    // Views of several lines keep their line breaks; single-line values in them go through table() or escapeControls.
    assert.equal(out, 'Address:  10.0.0.7\\x1b[2J\nnode-x  Ready  10.0.0.8\nStatus:   Ready\n');
    assert.doesNotMatch(out, /\u001b/);
    cmd.parse(['-o', 'json'], { from: 'user' });
    const json = captured(process.stdout, () => print(cmd, { address: EVIL }, () => 'unused'));
    assert.equal(JSON.parse(json).address, EVIL);
    assert.doesNotMatch(json, /[\u0000-\u0009\u000b-\u001f]/);
    const err = captured(process.stderr, () => printErr(`kiver: node ${EVIL}\r`));
    assert.equal(err, 'kiver: node 10.0.0.7\\x1b[2J\nnode-x  Ready  10.0.0.8\\r\n');
  });
});
