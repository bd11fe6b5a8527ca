// Runs before `npm test`: the Debian packages some tests drive for real.
//   chromium   /usr/bin/chromium   the browser test (web/test/browser.test.ts)
//   nginx      /usr/sbin/nginx     the cluster gateway's generated config (k8s-tests/gateway.test.ts):
//                                  nginx-light, or nginx where this Debian has no nginx-light
//   shellcheck shellcheck on PATH   the shell scripts' lint (k8s-tests/scripts.test.ts)
// Whatever is missing is installed in one `apt-get update` and one `apt-get install` when we may
// install system packages (root with apt-get, as on CI); otherwise we say how, and those tests skip
// with a message. On CI a missing package is an error.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const onPath = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;

/** `packages`: Debian packages to try in order (the first one apt knows is installed). */
const needs = [
  { what: 'Chromium', present: () => existsSync('/usr/bin/chromium'), packages: ['chromium'], usedBy: 'the browser test' },
  { what: 'nginx', present: () => existsSync('/usr/sbin/nginx'), packages: ['nginx-light', 'nginx'], usedBy: 'the gateway test' },
  { what: 'ShellCheck', present: () => onPath('shellcheck'), packages: ['shellcheck'], usedBy: 'the shell scripts test' },
];

const missing = () => needs.filter((n) => !n.present());
if (missing().length === 0) process.exit(0);

/** True when apt has an installable version of `name` (a package it knows with a candidate). */
function installable(name) {
  const result = spawnSync('apt-cache', ['policy', name], { encoding: 'utf8' });
  const candidate = /^\s*Candidate:\s*(\S+)/m.exec(result.stdout ?? '')?.[1];
  return result.status === 0 && candidate !== undefined && candidate !== '(none)';
}

if (process.getuid?.() === 0 && onPath('apt-get')) {
  const wanted = missing();
  console.log(`Installing ${wanted.map((n) => n.what).join(', ')} for ${wanted.map((n) => n.usedBy).join(', ')}...`);
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    const packages = wanted.map((n) => n.packages.find(installable) ?? n.packages[n.packages.length - 1]);
    console.log(`apt-get install ${packages.join(' ')}`);
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } catch {
    // Reported below.
  }
}

const still = missing();
if (still.length === 0) process.exit(0);
for (const n of still) {
  const [first, ...others] = n.packages;
  const install = `sudo apt-get install ${first}${others.length > 0 ? ` (or ${others.join(', ')})` : ''}`;
  if (process.env['CI']) console.error(`${n.what} is not installed and ${n.usedBy} needs it on CI. Install it with: ${install}`);
  else console.warn(`${n.what} is not installed: ${n.usedBy} will be skipped. Install it with: ${install}`);
}
if (process.env['CI']) process.exit(1);
