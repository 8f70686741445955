/** The monitoring pair's registration and the alert receiver's records (wire and store shapes). */
import { Type, type Static } from '@sinclair/typebox';

const Url = Type.String({ pattern: '^https?://[^\\s/?#]+/?$', maxLength: 255 });

export const MonitoringConfig = Type.Object(
  {
    prometheus: Type.Array(Url, { maxItems: 8, description: 'base URLs of the Prometheus servers' }),
    alertmanager: Type.Array(Url, { maxItems: 8, description: 'base URLs of the Alertmanager peers' }),
  },
  { additionalProperties: false },
);
export type MonitoringConfig = Static<typeof MonitoringConfig>;

/** One notification of one alert group state on one channel; its id is the de-duplication key. */
export const AlertRecordCreate = Type.Object(
  {
    id: Type.String({ pattern: '^[a-f0-9]{16,64}$' }),
    channel: Type.Union([Type.Literal('email'), Type.Literal('sms')]),
    status: Type.Union([Type.Literal('firing'), Type.Literal('resolved')]),
    alertname: Type.String({ maxLength: 200 }),
    summary: Type.String({ maxLength: 2000 }),
    recipients: Type.Array(Type.String({ maxLength: 200 }), { maxItems: 100 }),
  },
  { additionalProperties: false },
);
export type AlertRecordCreate = Static<typeof AlertRecordCreate>;

export const AlertRecordResult = Type.Object(
  {
    state: Type.Union([Type.Literal('sent'), Type.Literal('failed')]),
    attempts: Type.Integer({ minimum: 1, maximum: 1000 }),
    error: Type.Optional(Type.String({ maxLength: 2000 })),
  },
  { additionalProperties: false },
);
export type AlertRecordResult = Static<typeof AlertRecordResult>;

export interface AlertRecord extends AlertRecordCreate {
  state: 'sending' | 'sent' | 'failed';
  attempts: number;
  error?: string;
  createdAt: string;
  updatedAt: string;
}
