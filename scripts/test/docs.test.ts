/**
 * The documentation holds together: the generated configuration reference is what `npm run docs`
 * writes from the schemas, every relative link in README.md and docs/ reaches a file (and, in a
 * Markdown file, a heading), and the README's index names every page of docs/.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { serviceNames } from '@avatar-pipeline/kit/topology';
import { headingAnchor } from '@avatar-pipeline/kit/config-reference';
import { configurationReference } from '../configuration-reference.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const docs = join(root, 'docs');
const pages = [join(root, 'README.md'), ...readdirSync(docs).filter((f) => f.endsWith('.md')).map((f) => join(docs, f))];

const withoutFences = (markdown: string) => markdown.replace(/^```[\s\S]*?^```/gm, '');
/** Markdown without fenced code blocks and code spans, where a link is only text. */
const prose = (markdown: string) => withoutFences(markdown).replace(/`[^`\n]*`/g, '');

/** Link targets of inline links and images, `[text](target)`, and of HTML `href`/`src`. */
function linkTargets(markdown: string): string[] {
  const text = prose(markdown);
  const inline = [...text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]!);
  const html = [...text.matchAll(/\b(?:href|src)="([^"]+)"/g)].map((m) => m[1]!);
  return [...inline, ...html];
}

/** The anchors GitHub gives a Markdown file's headings (a repeated heading gets -1, -2, ...). */
function anchorsOf(file: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const [, heading] of withoutFences(readFileSync(file, 'utf8')).replace(/`([^`\n]*)`/g, '$1').matchAll(/^#{1,6}\s+(.+?)\s*#*$/gm)) {
    const base = headingAnchor(heading!.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1'));
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

describe('docs/configuration.md', () => {
  it('is what `npm run docs` writes from the services’ env schemas', () => {
    expect(readFileSync(join(docs, 'configuration.md'), 'utf8'), 'run npm run docs').toBe(configurationReference());
  });

  it('has a section for every service (scripts/configuration-reference.mjs)', () => {
    const sections = anchorsOf(join(docs, 'configuration.md'));
    expect(serviceNames.filter((name) => !sections.has(headingAnchor(name)))).toEqual([]);
  });
});

describe('links in README.md and docs/', () => {
  it.each(pages.map((p) => [relative(root, p)]))('%s: every relative link reaches a file, and a heading where it names one', (page) => {
    const file = join(root, page);
    const broken: string[] = [];
    for (const target of linkTargets(readFileSync(file, 'utf8'))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
      const [path = '', anchor] = target.split('#');
      const resolved = path === '' ? file : resolve(dirname(file), decodeURIComponent(path));
      if (!existsSync(resolved)) broken.push(`${target}: no such file`);
      else if (anchor && resolved.endsWith('.md') && statSync(resolved).isFile() && !anchorsOf(resolved).has(anchor)) broken.push(`${target}: no such heading`);
    }
    expect(broken).toEqual([]);
  });

  it('finds the broken links it is for', () => {
    const targets = linkTargets('[a](docs/none.md) `[b](code.md)` [c](#x "title") <img src="pic.svg">\n```\n[d](fenced.md)\n```\n');
    expect(targets).toEqual(['docs/none.md', '#x', 'pic.svg']);
    expect(anchorsOf(join(docs, 'runbooks.md'))).toContain('avataruploadsnotendedintime');
  });

  it('maps every directory of the repository in the README', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const map = /^## Repository map\n+```\n([\s\S]*?)^```/m.exec(readme)?.[1] ?? '';
    // Untracked top-level directories: node_modules and what .gitignore names from the root.
    const ignored = new Set(['node_modules', '.git', ...readFileSync(join(root, '.gitignore'), 'utf8').split('\n').flatMap((l) => /^\/?([\w.-]+)\/$/.exec(l.trim())?.slice(1) ?? [])]);
    const dirs = (dir: string) => readdirSync(join(root, dir), { withFileTypes: true }).filter((d) => d.isDirectory() && !ignored.has(d.name)).map((d) => d.name);
    const missing = [
      ...dirs('.').filter((d) => !map.includes(`${d}/`)),
      ...dirs('services').filter((d) => !new RegExp(`(services/|[(,\\s])${d}[,)\\s]`).test(map)).map((d) => `services/${d}`),
      ...dirs('packages').filter((d) => !new RegExp(`^\\s+${d}/`, 'm').test(map)).map((d) => `packages/${d}`),
      ...dirs('local/src').filter((d) => d !== 'types' && !map.includes(`src/${d}/`)).map((d) => `local/src/${d}`),
    ];
    expect(missing).toEqual([]);
  });

  it('indexes every page of docs/ from the README', () => {
    const linked = new Set(linkTargets(readFileSync(join(root, 'README.md'), 'utf8')).map((t) => t.split('#')[0]));
    const unlinked = readdirSync(docs).filter((f) => f.endsWith('.md') && !linked.has(`docs/${f}`));
    expect(unlinked).toEqual([]);
  });
});
