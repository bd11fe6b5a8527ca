/**
 * The Python tools `npm test` installs (scripts/python-tools.mjs: moto, schemathesis) in a venv
 * under node_modules/.cache, for the tests that drive them.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const VENV = fileURLToPath(new URL('../../../node_modules/.cache/python-tools/', import.meta.url));
/** Written once an install is complete. */
const INSTALLED = `${VENV}requirements.sha256`;
const INSTALL = 'node scripts/ensure-packages.mjs (npm test runs it; needs Python 3.11+ with venv and pip)';

/** The path of a program of the venv (`python`, `schemathesis`). */
export const pythonTool = (program: string) => `${VENV}bin/${program}`;

/** Throws, saying how to install them, unless the tools are installed. */
export function requirePythonTools(): void {
  if (!existsSync(INSTALLED)) throw new Error(`the Python test tools are not installed; install them with: ${INSTALL}`);
}

/**
 * Why tests of `what` cannot run here (said on stderr too, so a skip is seen), or undefined when
 * they can. On CI nothing is a reason to skip: the tests then fail instead.
 */
export function pythonToolsSkipReason(what: string): string | undefined {
  if (existsSync(INSTALLED) || process.env['CI']) return undefined;
  const reason = `${what} is not installed; install it with: ${INSTALL}`;
  console.warn(`${what} tests skipped: ${reason}`);
  return reason;
}
