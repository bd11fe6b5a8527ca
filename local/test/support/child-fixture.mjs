// A stand-in service for the supervisor tests, steered by FIXTURE_MODE:
//   ok (default)  ready after 200 ms; POST /crash exits with code 1
//   never-ready   /readyz always answers 503
//   exit-early    writes a few lines and exits with code 3 before listening
//   stubborn      ignores SIGTERM
import { createServer } from 'node:http';

const mode = process.env.FIXTURE_MODE ?? 'ok';
const log = (msg) => process.stdout.write(`${JSON.stringify({ level: 'info', service: 'fixture', msg })}\n`);

if (mode === 'exit-early') {
  log('starting');
  process.stderr.write('fatal: cannot reach the database\n');
  process.exit(3);
}
if (mode === 'stubborn') process.on('SIGTERM', () => log('ignoring SIGTERM'));
else process.on('SIGTERM', () => { log('stopping'); process.exit(0); });

const started = Date.now();
createServer((req, res) => {
  if (req.url === '/readyz') {
    res.statusCode = mode !== 'never-ready' && Date.now() - started > 200 ? 200 : 503;
    return res.end();
  }
  if (req.url === '/crash') {
    process.stderr.write('boom: plain text on stderr\n');
    res.end();
    setTimeout(() => process.exit(1), 10);
    return;
  }
  res.statusCode = 404;
  res.end();
}).listen(Number(process.env.PORT), '127.0.0.1', () => log('listening'));
