// The benchmarks' photographs: Debian's plasma-workspace-wallpapers, fetched once into bench/corpus
// with `apt-get download` (no root needed), falling back to fixtures/photos where apt is missing.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;

/** The photographs of the wallpaper set (those whose largest image is a JPEG, 18), at that size. */
export function wallpaperPhotos() {
  const dir = join(root, 'bench/corpus');
  const wallpapers = join(dir, 'usr/share/wallpapers');
  if (!existsSync(wallpapers)) {
    try {
      mkdirSync(dir, { recursive: true });
      execFileSync('apt-get', ['download', 'plasma-workspace-wallpapers'], { cwd: dir, stdio: 'ignore' });
      const deb = readdirSync(dir).find((f) => f.endsWith('.deb'));
      execFileSync('dpkg', ['-x', join(dir, deb), dir]);
    } catch {
      console.error('apt-get download failed; using fixtures/photos instead');
      const fixtures = join(root, 'fixtures/photos');
      return readdirSync(fixtures).filter((f) => /\.(jpe?g|png|webp)$/.test(f)).map((f) => join(fixtures, f));
    }
  }
  return readdirSync(wallpapers)
    .sort()
    .flatMap((name) => {
      const images = join(wallpapers, name, 'contents/images');
      const largest = readdirSync(images)
        .filter((f) => /^\d+x\d+\.(jpg|png)$/.test(f))
        .sort((a, b) => pixels(b) - pixels(a))[0];
      return largest?.endsWith('.jpg') ? [join(images, largest)] : [];
    });
}

/** A short name for a corpus file: the wallpaper's, or the file's. */
export function photoName(file) {
  return file.includes('/wallpapers/') ? file.split('/').slice(-4, -3)[0] : file.split('/').pop();
}

function pixels(file) {
  const [w, h] = file.split('.')[0].split('x').map(Number);
  return w * h;
}
