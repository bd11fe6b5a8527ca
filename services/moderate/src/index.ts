export { createModerateService, type ModerateAppConfig, type ModerateDeps } from './app.js';
export { SOURCE } from './outcomes.js';
export { moderateEnv, moderationPolicy, type ModerateConfig } from './config.js';
export { decide, defaultPolicy, policySchema, type Decision, type Policy } from './policy.js';
export * from './providers/index.js';
export { moderateStores, type ModerateStores } from './stores.js';
export { decodeForModeration, type ModerationDecode, type ModerationView, type ViewOptions, type ViewShape } from './views.js';
