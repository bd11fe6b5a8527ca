// The whole stack (npm start), and the public API's client (tickets, the form POST, status) for the fault runs and bench/pipeline.mjs.
export * from './stack.js';
export * from './client.js';
// The stand-ins. table-setup: creating the table (its TTL and the reconciler's index) on a DynamoDB endpoint, as dynamo.ts does on dynalite.
export * from './stand-ins/s3.js';
export * from './stand-ins/post-policy.js';
export * from './stand-ins/dynamo.js';
export * from './stand-ins/table-setup.js';
export * from './stand-ins/issuer.js';
export * from './stand-ins/web-push-testing.js';
// moto's AWS server, for the tests of the production AWS paths (SQS, SSM, Cognito).
export * from './stand-ins/moto.js';
export * from './broker/broker.js';
// The gateway, the services' environment, the child guard and port picking, for tools that assemble part of the stack (bench/presign.mjs, bench/footprint.mjs).
export * from './gateway/gateway.js';
export * from './gateway/web-client.js';
export * from './ports.js';
export * from './supervision/service-env.js';
export { childGuardScript } from './supervision/supervisor.js';
// The test suites' backends (dynalite with the table, s3rver with the bucket) and their built-services check.
export * from './test-backends.js';
