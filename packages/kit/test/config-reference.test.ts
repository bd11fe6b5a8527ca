import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { headingAnchor, renderConfigReference } from '../src/config-reference.js';
import { env } from '../src/config.js';

const shared = { PORT: env.port(8080).describe('Listen port.') };
const own = {
  ...shared,
  TOKEN: z.string().describe('A | secret.'),
  HOSTS: env.list(['a', 'b']).describe('Hosts.'),
  ON: env.bool(false).describe('Switch.'),
  MODE: z.enum(['x', 'y']).optional().describe('Mode.'),
  RATE: z.coerce.number().positive().optional().describe('Rate.'),
};
const render = (shape: Record<string, z.ZodType>) =>
  renderConfigReference({
    intro: '# Reference',
    sections: [{ title: 'Services', workloads: [{ title: 'one', note: 'Its note.', shape }] }],
    groups: [{ title: 'Common group', source: 'kit', shape: shared }],
  });

describe('renderConfigReference', () => {
  it('lists own variables with default, accepted values and description, and links the groups spread whole', () => {
    const page = render(own);
    expect(page).toContain('Shared: [Common group](#common-group).');
    expect(page).toContain('| `TOKEN` | **required** | string | A \\| secret. |');
    expect(page).toContain('| `HOSTS` | `a,b` | comma-separated list | Hosts. |');
    expect(page).toContain('| `ON` | `false` | `true`/`false` (or `1`/`0`, `yes`/`no`) | Switch. |');
    expect(page).toContain('| `MODE` | unset | `x`, `y` | Mode. |');
    expect(page).toContain('| `RATE` | unset | number > 0 | Rate. |');
    expect(page).toContain('### Common group\n\nkit.\n\n| Variable | Default | Accepts | Description |\n| --- | --- | --- | --- |\n| `PORT` | `8080` | integer 0–65535 | Listen port. |');
    // Only the row of the group table: the workload does not repeat it.
    expect(page.match(/\| `PORT` \|/g)).toHaveLength(1);
  });

  it('lists a variable of its own when a group is not spread whole, and refuses one without a description', () => {
    expect(render({ PORT: env.port(9090).describe('Another port.') })).toContain('| `PORT` | `9090` |');
    expect(() => render({ ...own, BARE: z.string() })).toThrow('BARE has no description');
  });

  it('makes GitHub heading anchors', () => {
    expect(headingAnchor('Images built and run: npm run test:images')).toBe('images-built-and-run-npm-run-testimages');
    expect(headingAnchor('GET /v1/uploads/{uploadId} (profile)')).toBe('get-v1uploadsuploadid-profile');
  });
});
