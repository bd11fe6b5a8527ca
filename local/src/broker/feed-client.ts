/** Reads the local broker's event feed (Server-Sent Events, see feed.ts) entry by entry. */
import { feedEntrySchema, type FeedEntry } from './feed.js';

export interface FeedItem {
  /** The entry's JSON as the broker sent it. */
  data: string;
  /** The entry, or undefined when it does not match the schema (a newer broker's outcome). */
  entry: FeedEntry | undefined;
}

function parseEntry(data: string): FeedEntry | undefined {
  try {
    const result = feedEntrySchema.safeParse(JSON.parse(data));
    return result.success ? result.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Connects, calls `onOpen` once the broker answers, then yields every entry until the stream ends
 * (returns) or breaks (throws). Blocks are split on blank lines as the broker writes them (`\n`).
 */
export async function* readFeed(url: string, onOpen: () => void = () => {}): AsyncGenerator<FeedItem> {
  const res = await fetch(url, { headers: { accept: 'text/event-stream' } });
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new Error(`${url} answered ${res.status}`);
  }
  onOpen();
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of res.body) {
    buffer += decoder.decode(chunk, { stream: true });
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      // Comments (`: heartbeat`) carry no data.
      const data = block
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5))
        .join('\n');
      if (data) yield { data, entry: parseEntry(data) };
    }
  }
}
