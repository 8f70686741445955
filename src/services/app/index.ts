/** The `app` type: today's behaviour — N independent containers of the user's image, no roles. */
export const APP_TYPE = 'app';
export const appType = {
  name: APP_TYPE,
  description: 'containers of your own image (--image), N independent replicas; no roles, no failover',
  version: '-',
} as const;
