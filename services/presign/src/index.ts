export type { UploadTicket } from '@avatar-pipeline/kit/api-routes';
export { createPresignService, type PresignDependencies, type PresignSettings } from './app.js';
export { allowedContentTypes, presignEnv, type AllowedContentType } from './config.js';
