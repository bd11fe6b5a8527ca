/** A local broker on a real port, with recording subscribers on theirs, for the event feed's tests. */
import { CloudEvent } from 'cloudevents';
import { createLogger } from '@avatar-pipeline/kit/logger';
import type { DeliveryPolicy, ServiceName, TriggerSpec } from '@avatar-pipeline/kit/topology';
import { createBroker, type Broker } from '../../src/broker/broker.js';
import { listen } from '../../src/listen.js';
import { accept, startSubscriber, type Responder, type Subscriber } from './subscriber.js';

const fast: DeliveryPolicy = {
  retry: 2,
  backoffPolicy: 'exponential',
  backoffDelay: 'PT0.01S',
  timeout: 'PT5S',
  deadLetter: { service: 'profile', path: '/dead-letter' },
};

/** A trigger on an exact type, delivering to `service`'s /events with quick retries. */
export function trigger(name: string, type: string, service: ServiceName, delivery: Partial<DeliveryPolicy> = {}): TriggerSpec {
  return { name, filters: [{ exact: { type } }], subscriber: { service, path: '/events' }, delivery: { ...fast, ...delivery } };
}

export function testEvent(type: string, id: string, subject = 'uploads/p/u'): CloudEvent<unknown> {
  return new CloudEvent<unknown>({ specversion: '1.0', id, source: '/test', type, subject, datacontenttype: 'application/json', data: { n: 1 } });
}

export interface ServedBroker {
  broker: Broker;
  /** The broker's base URL. */
  url: string;
  subscribers: Partial<Record<ServiceName, Subscriber>>;
  /** Closes the broker (ending its feed's streams), its port and the subscribers. */
  close(): Promise<void>;
}

/** `responders`: one subscriber per service named (profile is the dead-letter sink). */
export async function startServedBroker(triggers: TriggerSpec[], responders: Partial<Record<ServiceName, Responder>>): Promise<ServedBroker> {
  const subscribers: Partial<Record<ServiceName, Subscriber>> = {};
  for (const [name, respond] of Object.entries(responders)) subscribers[name as ServiceName] = await startSubscriber(respond ?? accept);
  const broker = createBroker({
    triggers,
    resolve: (d) => subscribers[d.service]?.url,
    logger: createLogger('broker', 'silent'),
    deadLetterDelivery: { retry: 1, backoffPolicy: 'linear', backoffDelay: 'PT0.01S', timeout: 'PT5S' },
  });
  const server = await listen('broker', broker.service.app.fetch, 0);
  return {
    broker,
    url: `http://127.0.0.1:${server.port}`,
    subscribers,
    close: async () => {
      await broker.close();
      await server.close();
      await Promise.all(Object.values(subscribers).map((s) => s.close()));
    },
  };
}
