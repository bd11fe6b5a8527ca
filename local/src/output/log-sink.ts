/**
 * Where the stack's logs go. Every line is one JSON object whose `service` field names its
 * author: in-process parts log through pino, child processes' lines are passed on unchanged, and
 * the odd plain-text line a child writes (a crash trace, a runtime warning) is wrapped in JSON.
 * On a terminal they are printed pretty; piped (CI, files, jq) they stay JSON.
 */
import type { createLogger } from '@avatar-pipeline/kit/logger';
import { parseLogRecord, prettyLogLine } from './log-format.js';
import { colorsOn, palette } from './terminal.js';

type Destination = NonNullable<Parameters<typeof createLogger>[2]>;

/** Receives one JSON log line, without its newline. */
export type LogSink = (line: string) => void;

export const logFormats = ['json', 'pretty'] as const;
export type LogFormat = (typeof logFormats)[number];

/** Writes to stdout: pretty when it is a terminal, JSON otherwise, unless `format` says which. */
export function stdoutSink(format: LogFormat = process.stdout.isTTY ? 'pretty' : 'json'): LogSink {
  if (format === 'json') return (line) => void process.stdout.write(`${line}\n`);
  const paint = palette(colorsOn(process.stdout));
  return (line) => void process.stdout.write(`${prettyLogLine(line, paint)}\n`);
}

/** A pino destination writing into a sink. */
export function sinkDestination(sink: LogSink): Destination {
  return { write: (chunk: string) => sink(chunk.endsWith('\n') ? chunk.slice(0, -1) : chunk) };
}

/** A line a child wrote, as a JSON log line. */
export function childLogLine(service: string, stream: 'stdout' | 'stderr', line: string): string {
  if (parseLogRecord(line)) return line;
  return JSON.stringify({
    level: stream === 'stderr' ? 'error' : 'info',
    time: new Date().toISOString(),
    service,
    stream,
    msg: line,
  });
}
