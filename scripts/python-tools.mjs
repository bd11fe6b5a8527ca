// The Python tools some tests drive for real (moto's AWS server, schemathesis; local/src/stand-ins/python-tools.ts), installed by
// scripts/ensure-packages.mjs before `npm test`: a venv at node_modules/.cache/python-tools (so a
// clean `npm ci` starts afresh) with the exact pins of scripts/python-requirements.txt. The venv
// records a hash of that file and of the interpreter it was made with, and is kept while both are
// unchanged (a later run is a no-op); otherwise it is made again from scratch, the hash written
// last, so an interrupted install is redone.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const REQUIREMENTS = join(root, 'scripts/python-requirements.txt');
/** Also named in local/src/stand-ins/python-tools.ts, which runs the tools from here (this script runs before anything is built). */
const VENV = join(root, 'node_modules/.cache/python-tools');
const STAMP = join(VENV, 'requirements.sha256');
export const PYTHON_TOOLS_INSTALL = 'node scripts/ensure-packages.mjs (needs Python 3.11+ with venv and pip; on Debian: apt-get install python3-venv)';

/** Runs a command with its output shown; throws with `what` when it fails. */
function run(what, command, args) {
  const result = spawnSync(command, args, { stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`${what} failed (${result.error?.message ?? `exit ${result.status}`})`);
}

/**
 * Makes sure the venv satisfies the requirements file. Returns undefined when it does, otherwise
 * why not (nothing is thrown: the caller decides whether that is an error).
 */
export function ensurePythonTools() {
  // Debian's python3 has `venv` but not `ensurepip` without python3-venv: both are needed.
  const probe = spawnSync('python3', ['-c', 'import ensurepip, sys, venv; print(sys.executable, sys.version)'], { encoding: 'utf8' });
  if (probe.status !== 0) return `Python 3 with venv is not available (${probe.error?.message ?? probe.stderr.trim().split('\n').pop()})`;
  const wanted = createHash('sha256').update(readFileSync(REQUIREMENTS)).update(probe.stdout).digest('hex');
  if (existsSync(STAMP) && readFileSync(STAMP, 'utf8') === wanted) return undefined;

  const started = Date.now();
  console.log('Installing the Python test tools (scripts/python-requirements.txt) into node_modules/.cache/python-tools...');
  try {
    rmSync(VENV, { recursive: true, force: true });
    run('python3 -m venv', 'python3', ['-m', 'venv', VENV]);
    run('pip install', join(VENV, 'bin', 'python'), ['-m', 'pip', 'install', '--no-input', '--disable-pip-version-check', '--quiet', '--requirement', REQUIREMENTS]);
  } catch (err) {
    return err.message;
  }
  writeFileSync(STAMP, wanted);
  console.log(`Python test tools installed in ${Math.round((Date.now() - started) / 1000)} s.`);
  return undefined;
}
