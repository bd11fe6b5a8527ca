/**
 * `npm run events`: tails the running local stack's broker, one line per thing that happens to an
 * event (accepted, each retry, delivered, dead-lettered, parked). Finds the stack through the state
 * file in its data directory; reconnects when the connection breaks while the stack still runs.
 */
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '@avatar-pipeline/kit/config';
import { main } from '@avatar-pipeline/kit/server';
import { FEED_PATH } from './broker/feed.js';
import { dataDirOf, repoRoot, stackEnv } from './config.js';
import { readFeed } from './broker/feed-client.js';
import { formatFeedEntry, matchesFilter, type FeedFilter } from './output/feed-format.js';
import { readStackState, stateFile } from './stack-state.js';
import { colorsOn, palette } from './output/terminal.js';

const usage = `usage: npm run events [-- --type <text>] [--subject <text>] [--json]
  Prints what the local broker does with each event while npm start runs.
  --type <text>     only events whose type contains <text>
  --subject <text>  only events whose subject contains <text> (an upload id, a player id)
  --json            the broker's JSON entries, one per line
`;

/** Waits between reconnection attempts, and how many failed ones in a row end the command. */
const RECONNECT_MS = 1000;
const MAX_FAILURES = 30;

function exit(code: number, message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

function options(): { filter: FeedFilter; json: boolean } {
  try {
    const { values } = parseArgs({
      options: { type: { type: 'string' }, subject: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
    });
    if (values.help) {
      process.stdout.write(usage);
      process.exit(0);
    }
    return { filter: { type: values.type, subject: values.subject }, json: values.json };
  } catch (err) {
    return exit(2, `${(err as Error).message}\n${usage}`);
  }
}

main(async () => {
  const { filter, json } = options();
  const dataDir = dataDirOf(loadConfig({ LOCAL_DATA_DIR: stackEnv.LOCAL_DATA_DIR }).LOCAL_DATA_DIR, repoRoot);
  const paint = palette(colorsOn(process.stdout));
  // `npm run events | head` closes the pipe: that is the end, not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => exit(err.code === 'EPIPE' ? 0 : 1, err.message));

  let connected = false;
  let failures = 0;
  for (;;) {
    const state = await readStackState(dataDir);
    if (!state) exit(1, `no local stack is running (no ${stateFile(dataDir)}): start it with npm start`);
    const url = `${state.brokerUrl}${FEED_PATH}`;
    let problem = 'the broker ended the stream';
    try {
      const open = () => {
        process.stderr.write(`${connected ? 'reconnected to' : 'listening to'} the broker at ${url} (Ctrl-C to stop)\n`);
        connected = true;
        failures = 0;
      };
      for await (const { data, entry } of readFeed(url, open)) {
        if (entry && !matchesFilter(entry, filter)) continue;
        process.stdout.write(`${json ? data : entry ? formatFeedEntry(entry, paint) : paint.gray(data)}\n`);
      }
    } catch (err) {
      const cause = (err as Error).cause;
      problem = cause instanceof Error ? cause.message : (err as Error).message;
    }
    failures += 1;
    // A stack that stops removes its state file before it closes the stream.
    if (!(await readStackState(dataDir))) exit(0, 'the stack stopped');
    if (failures >= MAX_FAILURES) exit(1, `cannot reach the broker at ${url} (${problem}); is the stack still running? Start it with npm start`);
    if (failures === 1) process.stderr.write(`lost the broker at ${url} (${problem}); reconnecting\n`);
    await sleep(RECONNECT_MS);
  }
});
