/**
 * Text from outside (node addresses, error messages, event text, anything an agent or a
 * user sent) printed to a terminal: control characters become visible escapes, so such
 * text can neither drive the terminal (clear it, move the cursor, recolour it) nor start
 * a line of its own that passes for a table row or a log line.
 */

// C0 controls; then DEL, C1 controls (ESC's 8-bit forms: CSI, OSC, …), the line and
// paragraph separators, and the bidirectional marks and overrides that reorder what is
// shown — the ones JSON.stringify leaves as they are.
const C0 = '\\u0000-\\u0009\\u000b-\\u001f';
const BEYOND_JSON = '\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069';
const PATTERNS = {
  all: new RegExp(`[${C0}\\n${BEYOND_JSON}]`, 'g'),
  keepNewlines: new RegExp(`[${C0}${BEYOND_JSON}]`, 'g'),
  beyondJson: new RegExp(`[${BEYOND_JSON}]`, 'g'),
};
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeOne(c: string): string {
  const code = c.charCodeAt(0);
  return NAMED[c] ?? (code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`);
}

/**
 * `text` with every control character written as an escape (`\x1b`, `\n`, `\u202e`).
 * With `keepNewlines`, "\n" stays a line break: for text of several lines (an error that
 * lists problems, a multi-line view) whose lines were built by Kiver. With `beyondJson`,
 * only what JSON.stringify leaves as it is: for text about to be printed as JSON. Escaped
 * text has no control characters left, so escaping it again changes nothing.
 */
export function escapeControls(text: string, opts: { keepNewlines?: boolean; beyondJson?: boolean } = {}): string {
  const pattern = opts.beyondJson ? PATTERNS.beyondJson : opts.keepNewlines ? PATTERNS.keepNewlines : PATTERNS.all;
  return text.replace(pattern, escapeOne);
}
