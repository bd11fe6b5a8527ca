/** One line per feed entry for `npm run events`: time, outcome, type, subject, short id, what happened. */
import type { FeedEntry } from '../broker/feed.js';
import { clockTime, type Palette } from './terminal.js';

const outcomeColor = {
  accepted: 'cyan',
  dropped: 'gray',
  retrying: 'yellow',
  delivered: 'green',
  dead_lettered: 'magenta',
  undeliverable: 'red',
} as const satisfies Record<FeedEntry['outcome'], keyof Palette>;

/**
 * The part of an id that tells events apart: the pipeline's ids are `<uploadId>.<step>` (a UUIDv7,
 * whose first digits are a timestamp shared by uploads made close together, so its last 8 are
 * kept with the step), S3's are `<request id>.<host id>` (the request id's last 8 are kept).
 */
export function shortId(id: string): string {
  const dot = id.indexOf('.');
  const head = dot < 0 ? id : id.slice(0, dot);
  const tail = dot < 0 ? '' : id.slice(dot + 1);
  const short = head.length > 12 ? head.slice(-8) : head;
  return /^[a-z][a-z.-]*$/.test(tail) ? `${short}.${tail}` : short;
}

const duration = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);

function outcomeDetail(entry: FeedEntry): string {
  switch (entry.outcome) {
    case 'accepted':
      return `${entry.origin === 'reply' ? 'reply' : 'ingress'} → ${entry.triggers.join(', ')}`;
    case 'dropped':
      return entry.reason === 'no_trigger' ? 'no trigger matches' : 'TTL spent: it looped through the broker too often';
    case 'retrying': {
      const who = entry.destination === 'dead-letter' ? 'dead-letter sink ' : '';
      return `${entry.trigger}: ${who}${entry.problem} (attempt ${entry.attempt}), retry in ${duration(entry.retryInMs)}`;
    }
    case 'delivered': {
      const attempts = entry.attempts === 1 ? '' : ` after ${entry.attempts} attempts`;
      const reply = entry.reply ? `, replied ${entry.reply.type} ${shortId(entry.reply.id)}` : '';
      return `${entry.trigger}: ${entry.status}${attempts}${reply}`;
    }
    case 'dead_lettered':
      return `${entry.trigger}: ${entry.problem} → dead-letter sink`;
    case 'undeliverable':
      return `${entry.trigger}: ${entry.reason}${entry.problem ? ` (${entry.problem})` : ''}, kept at GET /_broker/undeliverable`;
  }
}

export function formatFeedEntry(entry: FeedEntry, p: Palette): string {
  const outcome = p[outcomeColor[entry.outcome]](entry.outcome.replace('_', '-').padEnd(13));
  return [p.gray(clockTime(entry.time)), outcome, entry.type, entry.subject ?? '-', p.bold(shortId(entry.id)), outcomeDetail(entry)].join('  ');
}

export interface FeedFilter {
  /** Substrings the type and the subject must contain. */
  type?: string | undefined;
  subject?: string | undefined;
}

export function matchesFilter(entry: FeedEntry, filter: FeedFilter): boolean {
  return (!filter.type || entry.type.includes(filter.type)) && (!filter.subject || (entry.subject ?? '').includes(filter.subject));
}
