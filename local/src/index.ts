export * from './dynamo.js';
export * from './issuer.js';
export * from './s3.js';
