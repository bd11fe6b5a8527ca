// The stand-in for node:24-bookworm-slim when no image registry is reachable: a Debian bookworm
// root filesystem from debootstrap plus Node 24 and npm from their npm packages, laid out as the
// official image has them (/usr/local/bin/node, /usr/local/lib/node_modules/npm, npm/npx links).
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec } from './exec.mjs';
import { imageExists, podman } from './podman.mjs';

export const BASE_IMAGE = 'localhost/avatar-pipeline/node-base:24';
const SUITE = 'bookworm';
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The Debian mirror this machine's apt uses for `suite` (deb822 .sources or one-line .list). */
export async function debianMirror(suite = SUITE) {
  const dir = '/etc/apt/sources.list.d';
  const files = ['/etc/apt/sources.list', ...(await readdir(dir).catch(() => [])).map((name) => join(dir, name))];
  for (const file of files.filter((f) => /\.(list|sources)$/.test(f))) {
    const text = await readFile(file, 'utf8').catch(() => '');
    if (file.endsWith('.sources')) {
      for (const paragraph of text.split(/\n\s*\n/)) {
        const field = (name) => new RegExp(`^${name}:\\s*(.+)$`, 'mi').exec(paragraph)?.[1]?.trim().split(/\s+/) ?? [];
        if (field('Enabled')[0] === 'no' || !field('Types').includes('deb') || !field('Suites').includes(suite)) continue;
        const uri = field('URIs')[0];
        if (uri) return uri;
      }
    } else {
      for (const line of text.split('\n')) {
        const match = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line.trim());
        if (match?.[2] === suite && match[1]) return match[1];
      }
    }
  }
  throw new Error(`no apt source for Debian ${suite} under /etc/apt: cannot run debootstrap`);
}

/** Unpacks the newest version of an npm package matching `spec` into `target` (its package/ folder). */
async function unpackNpmPackage(spec, target, workDir) {
  const [tarball] = JSON.parse(await exec('npm', ['pack', spec, '--json', '--pack-destination', workDir], { timeoutMs: 300_000 }));
  await mkdir(target, { recursive: true });
  await exec('tar', ['-xzf', join(workDir, tarball.filename), '-C', target, '--strip-components=1', '--no-same-owner'], { timeoutMs: 120_000 });
  return tarball.version;
}

/**
 * This machine's npm may only reach the registry through a certificate authority of its own
 * (`npm config get cafile`): the image's npm gets the same one, as its global npmrc says.
 */
async function trustNpmCa(rootfs) {
  const cafile = (await exec('npm', ['config', 'get', 'cafile'])).trim();
  if (!cafile || cafile === 'null' || cafile === 'undefined') return;
  const target = '/etc/ssl/certs/npm-ca.crt';
  await mkdir(join(rootfs, 'etc/ssl/certs'), { recursive: true });
  await copyFile(cafile, join(rootfs, target));
  await mkdir(join(rootfs, 'usr/local/etc'), { recursive: true });
  await writeFile(join(rootfs, 'usr/local/etc/npmrc'), `cafile=${target}\n`);
}

/** Makes the base image unless it exists; returns its name. Progress goes to `log`. */
export async function ensureBaseImage({ log, say }) {
  if (await imageExists(BASE_IMAGE)) return BASE_IMAGE;
  const started = performance.now();
  const work = await mkdtemp(join(tmpdir(), 'node-base-'));
  try {
    const rootfs = join(work, 'rootfs');
    const mirror = await debianMirror();
    say(`making ${BASE_IMAGE}: debootstrap ${SUITE} (minbase) from this machine's apt mirror`);
    await exec('debootstrap', ['--variant=minbase', SUITE, rootfs, mirror], { timeoutMs: 900_000, log });
    // As debian:bookworm-slim: no package lists, documentation, manuals or translations (copyright files stay).
    await exec('sh', ['-c', 'cd "$1" && find usr/share/doc -type f ! -name copyright -delete && rm -rf var/lib/apt/lists/* var/cache/apt/* usr/share/man/* usr/share/info/* usr/share/locale/* usr/share/groff/* usr/share/lintian/*', 'sh', rootfs]);

    const arch = process.arch === 'arm64' ? 'arm64' : 'x64';
    const node = await unpackNpmPackage(`node-linux-${arch}@24`, join(work, 'node'), work);
    await exec('install', ['-m', '755', join(work, 'node/bin/node'), join(rootfs, 'usr/local/bin/node')]);
    const npm = await unpackNpmPackage('npm@11', join(rootfs, 'usr/local/lib/node_modules/npm'), work);
    await symlink('../lib/node_modules/npm/bin/npm-cli.js', join(rootfs, 'usr/local/bin/npm'));
    await symlink('../lib/node_modules/npm/bin/npx-cli.js', join(rootfs, 'usr/local/bin/npx'));
    await trustNpmCa(rootfs);
    say(`  Node ${node}, npm ${npm}`);

    const tar = join(work, 'rootfs.tar');
    await exec('tar', ['-C', rootfs, '--numeric-owner', '-cf', tar, '.'], { timeoutMs: 300_000 });
    await podman(['import', '--change', `ENV PATH=${PATH}`, '--change', `ENV NODE_VERSION=${node}`, '--change', 'CMD ["node"]', tar, BASE_IMAGE], {
      timeoutMs: 300_000,
    });
    say(`  made in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    return BASE_IMAGE;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
