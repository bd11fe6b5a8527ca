export * from './decode.js';
export * from './formats.js';
export * from './inspect.js';
export * from './limits.js';
export * from './square.js';
