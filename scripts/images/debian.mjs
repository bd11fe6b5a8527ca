// The Debian packages the image test needs, installed when missing and we may (root, apt-get).
import { available, exec } from './exec.mjs';

// podman 4.3 will not even import an image without a network backend (netavark), host network or not.
// openssl makes the Kubernetes stand-in's cluster CA and serving certificate.
const PACKAGES = ['podman', 'buildah', 'runc', 'netavark', 'debootstrap', 'openssl'];

async function installed(pkg) {
  const status = await exec('dpkg-query', ['--show', '--showformat=${Status}', pkg]).catch(() => '');
  return status.includes('install ok installed');
}

export async function ensureDebianPackages({ log, say }) {
  const missing = [];
  for (const pkg of PACKAGES) if (!(await installed(pkg))) missing.push(pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0 || !(await available('apt-get'))) {
    throw new Error(`missing ${missing.join(', ')}: install them with: sudo apt-get install ${missing.join(' ')}`);
  }
  say(`installing ${missing.join(', ')} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await exec('apt-get', ['update', '-qq'], { timeoutMs: 300_000, log, env });
  await exec('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { timeoutMs: 900_000, log, env });
}
