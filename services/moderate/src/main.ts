/**
 * Process entry. Tracing starts first when it is configured, then start.ts is imported: the
 * modules it loads (the AWS SDK) are instrumented as they load.
 */
import { main } from '@avatar-pipeline/kit/server';

main(() => import('./start.js').then(({ start }) => start()), { tracing: 'moderate' });
