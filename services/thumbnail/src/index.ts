export { createThumbnailService, type ThumbnailDeps } from './app.js';
export { CACHE_CONTROL, SOURCE } from './thumbnailing.js';
export { thumbnailEnv, type ThumbnailConfig } from './config.js';
export { renderAvatar, type RenderOptions, type Rendition } from './render.js';
export { thumbnailStores, type ThumbnailStores } from './stores.js';
