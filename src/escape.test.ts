import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { escapeControls } from './escape.js';

describe('escapeControls', () => {
  it('writes an address that would clear the screen and forge a row as visible escapes', () => {
    const address = '10.0.0.7\u001b[2J\nnode-x  Ready  10.0.0.8';
    const out = escapeControls(address);
    assert.equal(out, '10.0.0.7\\x1b[2J\\nnode-x  Ready  10.0.0.8');
    assert.doesNotMatch(out, /[\u0000-\u001f]/);
  });

  it('escapes C0, DEL, C1 (8-bit CSI), carriage return, tab and bidi overrides; leaves other text alone', () => {
    assert.equal(escapeControls('a\u0000b\u0007c\u007fd\u009b2Je\rf\tg'), 'a\\x00b\\x07c\\x7fd\\x9b2Je\\rf\\tg');
    assert.equal(escapeControls('evil\u202etxt.exe \u2066x\u2069'), 'evil\\u202etxt.exe \\u2066x\\u2069');
    assert.equal(escapeControls('Zürich 北京 ✓ C:\\dir "q"'), 'Zürich 北京 ✓ C:\\dir "q"');
  });

  it('keepNewlines keeps line breaks only; a carriage return cannot overwrite a line', () => {
    assert.equal(escapeControls('problems:\n  line 8: \u001b[31mx\r', { keepNewlines: true }), 'problems:\n  line 8: \\x1b[31mx\\r');
  });

  it('beyondJson escapes only what JSON.stringify leaves raw (for text printed as JSON)', () => {
    const text = 'a\u001b[2J\nb\u009b31mc\u202ed';
    assert.equal(escapeControls(text, { beyondJson: true }), 'a\u001b[2J\nb\\x9b31mc\\u202ed');
    assert.doesNotMatch(JSON.stringify(escapeControls(text, { beyondJson: true })), /[\u0000-\u001f\u007f-\u009f\u202e]/);
  });

  it('is idempotent: escaped text has no control characters left', () => {
    const once = escapeControls('x\u001b[2J\ny\u202e');
    assert.equal(escapeControls(once), once);
    assert.equal(escapeControls(once, { keepNewlines: true }), once);
  });
});
