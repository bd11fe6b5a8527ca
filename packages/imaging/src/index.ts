export * from './decode.js';
export * from './fingerprint.js';
export * from './formats.js';
export * from './inspect.js';
export * from './limits.js';
export * from './square.js';
