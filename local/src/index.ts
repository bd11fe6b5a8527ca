export * from './dynamo.js';
// Creating the table (its TTL and the reconciler's index) on a DynamoDB endpoint, as dynamo.ts does on dynalite.
export * from './table-setup.js';
export * from './issuer.js';
// The gateway, the services' environment and port picking, for tools that assemble part of the stack (bench/presign.mjs).
export * from './gateway.js';
export * from './ports.js';
export * from './service-env.js';
export * from './s3.js';
export * from './post-policy.js';
export * from './broker.js';
export * from './stack.js';
export * from './web-push-testing.js';
export * from './web-client.js';
// The public API's client (tickets, the form POST, status), for the fault runs and bench/pipeline.mjs.
export * from './client.js';
// moto's AWS server, for the tests of the production AWS paths (SQS, SSM, Cognito).
export * from './moto.js';
// The test suites' backends (dynalite with the table, s3rver with the bucket) and their built-services check.
export * from './test-backends.js';
