export * from './formats.js';
export * from './inspect.js';
export * from './limits.js';
