/**
 * The committed charts under the real helm CLI (helm.sh/helm/v3, built from the Go module proxy):
 * `helm lint --strict` passes, and `helm template` renders exactly the objects the cdk8s app
 * synthesizes (the template escapes every literal `{{`, so Prometheus and Grafana templates in
 * alerts and dashboards survive Helm's own templating).
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { environmentNames, environments } from '@avatar-pipeline/cdk8s';
import { goTool } from './support/go-tools.js';
import { chartsDir, helm, helmTemplate } from './support/helm.js';
import { synthesize, type K8sObject } from './support/manifests.js';

const key = (o: K8sObject) => `${o.apiVersion} ${o.kind} ${o.metadata.namespace ?? ''} ${o.metadata.name}`;

beforeAll(async () => {
  await goTool('helm');
}, 20 * 60_000);

describe.each(environmentNames.map((env) => [env]))('charts/%s with the real helm', (env) => {
  it('passes helm lint --strict', async () => {
    const result = await helm(['lint', '--strict', join(chartsDir, env)]);
    expect(result.output).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    expect(result.code).toBe(0);
  });

  it('renders, through helm template, exactly the objects the cdk8s app synthesizes', async () => {
    // helm orders objects by kind for installation; the objects themselves must be identical.
    const byKey = (objects: K8sObject[]) => [...objects].sort((a, b) => key(a).localeCompare(key(b)));
    const rendered = await helmTemplate(env, environments[env].namespace);
    expect(byKey(rendered)).toEqual(byKey(synthesize(env).objects));
  });
});
