/** JSON logs (pino). Credentials never reach the output: they are redacted by path. */
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

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

/** `destination` defaults to stdout; the local stack passes its own to collect every line. */
export function createLogger(service: string, level = 'info', destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: redact, censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}
