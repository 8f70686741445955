import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkNotifyConfig, messageOf, notificationId, renderTemplate, type WebhookPayload } from './receiver.js';
import { InputError } from '../errors.js';

const payload = (over: Partial<WebhookPayload> = {}): WebhookPayload => ({
  version: '4', groupKey: '{}:{alertname="KiverNodeNotReady", node="n1"}', status: 'firing',
  groupLabels: { alertname: 'KiverNodeNotReady', node: 'n1' }, commonLabels: { alertname: 'KiverNodeNotReady', node: 'n1', severity: 'critical' },
  commonAnnotations: { summary: 'Node n1 is NotReady (no heartbeat)' },
  alerts: [{ status: 'firing', labels: { alertname: 'KiverNodeNotReady', node: 'n1' }, annotations: { summary: 'Node n1 is NotReady (no heartbeat)' }, startsAt: '2026-01-01T00:00:00Z', fingerprint: 'abc' }],
  ...over,
});

describe('alert receiver', () => {
  it('the de-duplication id is the same for the same group state from either peer, and differs by status and channel', () => {
    assert.equal(notificationId('email', payload()), notificationId('email', payload()));
    assert.notEqual(notificationId('email', payload()), notificationId('sms', payload()));
    assert.notEqual(notificationId('email', payload()), notificationId('email', payload({ status: 'resolved' })));
    assert.match(notificationId('email', payload()), /^[a-f0-9]{32}$/);
  });

  it('message subject names the alert and its summary', () => {
    assert.equal(messageOf(payload()).subject, '[FIRING:1] KiverNodeNotReady: Node n1 is NotReady (no heartbeat)');
  });

  it('SMS template escapes values for JSON and forms', () => {
    assert.equal(renderTemplate('{"t":"{{message}}","to":"{{ to }}"}', { message: 'a "b"\n', to: '+49' }, 'json'), '{"t":"a \\"b\\"\\n","to":"+49"}');
    assert.equal(renderTemplate('to={{to}}&m={{message}}', { message: 'a&b c', to: '+49' }, 'form'), 'to=%2B49&m=a%26b%20c');
  });

  it('a bad config names the field', () => {
    assert.throws(() => checkNotifyConfig({ email: { smtp: { host: 'x', port: 70000 }, from: 'a@b', to: ['c'] } }), (e: unknown) => e instanceof InputError && /email\.smtp\.port/.test(e.message));
    assert.throws(() => checkNotifyConfig({ sms: { url: 'ftp://x', to: ['1'] } }), /sms\.url/);
    assert.throws(() => checkNotifyConfig({ pager: {} }), /pager/);
  });
});
