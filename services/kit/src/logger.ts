/** JSON logs (pino). Credentials never reach the output: they are redacted by path. */
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

const redact = [
  'authorization',
  'token',
  'privateKey',
  'headers.authorization',
  'req.headers.authorization',
  '*.authorization',
  '*.token',
  '*.privateKey',
  '*.secretAccessKey',
];

export function createLogger(service: string, level = 'info'): Logger {
  return pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: redact, censor: '[redacted]' },
  });
}
