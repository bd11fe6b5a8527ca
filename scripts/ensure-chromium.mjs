// Runs before `npm test`: the browser test drives Debian's Chromium (/usr/bin/chromium). When it is
// missing and we may install system packages (root with apt-get, as on CI), install it; otherwise
// say how, and the browser test skips with a message. On CI a missing browser is an error.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CHROMIUM = '/usr/bin/chromium';
if (existsSync(CHROMIUM)) process.exit(0);

const hasAptGet = spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0;
if (process.getuid?.() === 0 && hasAptGet) {
  console.log('Installing Chromium for the browser test (apt-get install chromium)...');
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'chromium'], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } catch {
    // Reported below.
  }
}
if (existsSync(CHROMIUM)) process.exit(0);
const message = `Chromium is not installed at ${CHROMIUM}: the browser test will be skipped. Install it with: sudo apt-get install chromium`;
if (process.env['CI']) {
  console.error(`${message} (required on CI)`);
  process.exit(1);
}
console.warn(message);
