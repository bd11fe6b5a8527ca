export { createPresignService, type PresignDependencies, type PresignSettings, type UploadTicket } from './app.js';
export { allowedContentTypes, presignEnv, type AllowedContentType } from './config.js';
