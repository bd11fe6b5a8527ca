export * from './keys.js';
export * from './store.js';
export * from './file-store.js';
export * from './config.js';
export * from './load.js';
export * from './push-endpoint.js';
export * from './subscriptions.js';
// The SSM and Secret backends are loaded on demand by createVapidStore; import them from
// './ssm-store.js' and './secret-store.js' to use them directly.
export type { SsmStoreOptions, SsmVapidStore } from './ssm-store.js';
export type { SecretApi, SecretStoreOptions, SecretVapidStore } from './secret-store.js';
