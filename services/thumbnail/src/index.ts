export { CACHE_CONTROL, createThumbnailService, SOURCE, type ThumbnailDeps } from './app.js';
export { thumbnailEnv, type ThumbnailConfig } from './config.js';
export { renderAvatar, type RenderOptions, type Rendition } from './render.js';
