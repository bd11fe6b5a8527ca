export type { UploadTicket } from '@avatar-pipeline/kit/api-routes';
export { createPresignService, type PresignDeps } from './app.js';
export { allowedContentTypes, presignEnv, type AllowedContentType } from './config.js';
export { PostSigner, type PostPolicySigner, type SignedPost } from './post-signer.js';
export { presignStores, type PresignStores } from './stores.js';
export type { PresignSettings } from './upload-tickets.js';
