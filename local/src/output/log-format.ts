/**
 * Pino JSON lines as a person reads them in a terminal (`npm start` on a TTY):
 * `14:03:07.125 INFO  moderate    event handled  uploadId=… playerId=… ceId=… status=200`, the
 * fields that follow an upload first, the others dimmed, an error's stack below. Anything that is
 * not a JSON object (a stray line) is left alone.
 */
import { clockTime, type Palette } from './terminal.js';

type LogRecord = Record<string, unknown>;

/** Pino's numeric levels, for lines from a logger without the kit's level labels. */
const numericLevels: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** Shown first, in this order: what ties a line to an upload and an event. */
const keyFields = ['uploadId', 'playerId', 'ceId', 'ceType', 'trigger', 'status'];
/** Shown in the line's fixed columns, or not at all (pino's process fields). */
const shownElsewhere = new Set(['level', 'time', 'service', 'msg', 'err', 'pid', 'hostname']);

/** The line as a JSON object, or undefined when it is anything else. */
export function parseLogRecord(line: string): LogRecord | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as LogRecord) : undefined;
  } catch {
    return undefined;
  }
}

function levelName(level: unknown): string {
  return typeof level === 'number' ? (numericLevels[level] ?? String(level)) : String(level ?? 'info');
}

function paintLevel(name: string, p: Palette): string {
  const label = name.toUpperCase().padEnd(5);
  switch (name) {
    case 'fatal':
      return p.bold(p.red(label));
    case 'error':
      return p.red(label);
    case 'warn':
      return p.yellow(label);
    case 'info':
      return p.green(label);
    default:
      return p.gray(label);
  }
}

/** `key=value`, quoting a string only when it has spaces, quotes or `=` in it. */
function field(key: string, value: unknown): string {
  const text = typeof value === 'string' ? (/^[^\s"=]+$/.test(value) ? value : JSON.stringify(value)) : JSON.stringify(value);
  return `${key}=${text}`;
}

/** An error serialized by pino: its message as a field, its stack (when there is one) below the line. */
function errorParts(err: unknown): { field?: string; stack?: string } {
  if (err === undefined) return {};
  if (typeof err !== 'object' || err === null) return { field: field('err', err) };
  const { message, stack } = err as { message?: unknown; stack?: unknown };
  return {
    field: field('err', typeof message === 'string' ? message : err),
    ...(typeof stack === 'string' ? { stack: stack.split('\n').slice(1).join('\n') } : {}),
  };
}

export function prettyLogLine(line: string, p: Palette): string {
  const record = parseLogRecord(line);
  if (!record) return line;
  const level = levelName(record['level']);
  const time = record['time'];
  const head = [
    p.gray(typeof time === 'string' || typeof time === 'number' ? clockTime(time) : '--:--:--.---'),
    paintLevel(level, p),
    p.cyan(String(record['service'] ?? '-').padEnd(11)),
    level === 'error' || level === 'fatal' ? p.red(String(record['msg'] ?? '')) : String(record['msg'] ?? ''),
  ].join(' ');
  const key = keyFields.filter((k) => record[k] !== undefined).map((k) => field(k, record[k]));
  const err = errorParts(record['err']);
  const rest = Object.entries(record)
    .filter(([k, v]) => v !== undefined && !shownElsewhere.has(k) && !keyFields.includes(k))
    .map(([k, v]) => field(k, v));
  const fields = [...key, ...(err.field ? [p.red(err.field)] : []), ...(rest.length ? [p.gray(rest.join(' '))] : [])];
  const text = fields.length ? `${head}  ${fields.join(' ')}` : head;
  return err.stack ? `${text}\n${p.gray(err.stack)}` : text;
}
