// Runs before `npm test`: the Debian packages some tests drive for real.
//   chromium   /usr/bin/chromium   the browser test (web/test/browser.test.ts)
//   nginx      /usr/sbin/nginx     the cluster gateway's generated config (k8s-tests/gateway.test.ts):
//                                  nginx-light, or nginx where this Debian has no nginx-light
//   shellcheck shellcheck on PATH   the shell scripts' lint (k8s-tests/scripts.test.ts)
//   python3-venv python3 -m venv    the venv of the Python test tools (moto), which
//                                  scripts/python-tools.mjs then installs with pip
// Whatever is missing is installed in one `apt-get update` and one `apt-get install` when we may
// install system packages (root with apt-get, as on CI); otherwise we say how, and those tests skip
// with a message. On CI a missing package is an error.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ensurePythonTools, PYTHON_TOOLS_INSTALL } from './python-tools.mjs';

const onPath = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;

/** `packages`: Debian packages to try in order (the first one apt knows is installed). */
const needs = [
  { what: 'Chromium', present: () => existsSync('/usr/bin/chromium'), packages: ['chromium'], usedBy: 'the browser test' },
  { what: 'nginx', present: () => existsSync('/usr/sbin/nginx'), packages: ['nginx-light', 'nginx'], usedBy: 'the gateway test' },
  { what: 'ShellCheck', present: () => onPath('shellcheck'), packages: ['shellcheck'], usedBy: 'the shell scripts test' },
  {
    what: 'Python 3 venv',
    present: () => spawnSync('python3', ['-c', 'import ensurepip, venv'], { stdio: 'ignore' }).status === 0,
    packages: ['python3-venv'],
    usedBy: 'the moto tests',
  },
];

const missing = () => needs.filter((n) => !n.present());

/** True when apt has an installable version of `name` (a package it knows with a candidate). */
function installable(name) {
  const result = spawnSync('apt-cache', ['policy', name], { encoding: 'utf8' });
  const candidate = /^\s*Candidate:\s*(\S+)/m.exec(result.stdout ?? '')?.[1];
  return result.status === 0 && candidate !== undefined && candidate !== '(none)';
}

if (missing().length > 0 && process.getuid?.() === 0 && onPath('apt-get')) {
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
for (const n of still) {
  const [first, ...others] = n.packages;
  const install = `sudo apt-get install ${first}${others.length > 0 ? ` (or ${others.join(', ')})` : ''}`;
  if (process.env['CI']) console.error(`${n.what} is not installed and ${n.usedBy} needs it on CI. Install it with: ${install}`);
  else console.warn(`${n.what} is not installed: ${n.usedBy} will be skipped. Install it with: ${install}`);
}

const pythonProblem = ensurePythonTools();
if (pythonProblem !== undefined) {
  if (process.env['CI']) console.error(`The Python test tools could not be installed, and the moto tests need them on CI: ${pythonProblem}`);
  else console.warn(`The Python test tools are not installed (${pythonProblem}): the moto tests will be skipped. Install them with: ${PYTHON_TOOLS_INSTALL}`);
}
if (process.env['CI'] && (still.length > 0 || pythonProblem !== undefined)) process.exit(1);
