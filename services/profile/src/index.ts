export { createProfileService, type ProfileDeps } from './app.js';
export { profileEnv, type ProfileConfig } from './config.js';
export { ProfileStore, type Profile, type AvatarOutcome } from './profiles.js';
export { profileStores, type ProfileStores } from './stores.js';
