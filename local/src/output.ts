/**
 * Where the stack's logs go. Every line is one JSON object whose `service` field names its
 * author: in-process parts log through pino, child processes' lines are passed on unchanged, and
 * the odd plain-text line a child writes (a crash trace, a runtime warning) is wrapped in JSON.
 */
import type { createLogger } from '@avatar-pipeline/kit';

type Destination = NonNullable<Parameters<typeof createLogger>[2]>;

/** Receives one JSON log line, without its newline. */
export type LogSink = (line: string) => void;

export const stdoutSink: LogSink = (line) => {
  process.stdout.write(`${line}\n`);
};

/** A pino destination writing into a sink. */
export function sinkDestination(sink: LogSink): Destination {
  return { write: (chunk: string) => sink(chunk.endsWith('\n') ? chunk.slice(0, -1) : chunk) };
}

function isJsonObject(line: string): boolean {
  if (!line.startsWith('{')) return false;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null;
  } catch {
    return false;
  }
}

/** A line a child wrote, as a JSON log line. */
export function childLogLine(service: string, stream: 'stdout' | 'stderr', line: string): string {
  if (isJsonObject(line)) return line;
  return JSON.stringify({
    level: stream === 'stderr' ? 'error' : 'info',
    time: new Date().toISOString(),
    service,
    stream,
    msg: line,
  });
}
