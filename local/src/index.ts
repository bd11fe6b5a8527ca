export * from './dynamo.js';
export * from './issuer.js';
export * from './s3.js';
export * from './post-policy.js';
export * from './broker.js';
export * from './stack.js';
export * from './web-push-testing.js';
export * from './web-client.js';
