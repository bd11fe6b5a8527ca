/**
 * charts/avatar-pipeline is the committed output of `npm run charts`. The chart is written again
 * in memory and must match it byte for byte: a change to the cdk8s source, the kit topology or the
 * values files in cdk8s/chart/ that was not followed by `npm run charts` fails here. (k8s-tests
 * runs the real helm on the committed chart.)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildApp, CHART_NAME, CHART_VERSION, chartFiles, helmLiteral, renderTemplate, TEMPLATE_FILE } from '../src/index.js';

const chartDir = new URL(`../../charts/${CHART_NAME}/`, import.meta.url);

describe(`charts/${CHART_NAME}`, () => {
  it('holds exactly the chart files the writer writes, each as it writes it now (run `npm run charts` after a change)', () => {
    const files = chartFiles();
    const listed = (dir: URL, prefix = ''): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listed(new URL(`${e.name}/`, dir), `${prefix}${e.name}/`) : [`${prefix}${e.name}`]));
    expect(listed(chartDir).sort()).toEqual(Object.keys(files).sort());
    for (const [path, content] of Object.entries(files)) expect(readFileSync(new URL(path, chartDir), 'utf8'), path).toBe(content);
  });

  it('has a Helm v2 Chart.yaml named for the product, with versions', () => {
    const chart = parse(readFileSync(new URL('Chart.yaml', chartDir), 'utf8')) as Record<string, string>;
    expect(chart).toMatchObject({ apiVersion: 'v2', name: CHART_NAME, version: CHART_VERSION, appVersion: CHART_VERSION, type: 'application' });
  });

  it('keeps environment facts out of the compiled code: no account id, ARN or domain in cdk8s/src', () => {
    const sources = readdirSync(new URL('../src/', import.meta.url)).map((f) => readFileSync(new URL(`../src/${f}`, import.meta.url), 'utf8'));
    for (const source of sources) {
      expect(source).not.toMatch(/\b\d{12}\b/);
      expect(source).not.toMatch(/arn:aws:[^:]*:[^:]*:\d+:/);
      // eks.amazonaws.com/role-arn is the IRSA annotation's name, not a fact of an account.
      expect(source).not.toMatch(/(?<!eks\.)amazonaws\.com|example\.com/);
    }
  });
});

describe('the chart writer', () => {
  it('notices a change', () => {
    const { chart } = buildApp();
    chart.node.tryRemoveChild('ksvc-push');
    expect(renderTemplate(chart)).not.toBe(chartFiles()[TEMPLATE_FILE]);
  });

  // Placeholders are numbered in creation order: a Job's name must hash what they stand for, not
  // their numbers, or adding any object before it would rename the Job.
  it('writes the same template however many placeholders were made before', () => {
    expect(renderTemplate(buildApp().chart)).toBe(renderTemplate(buildApp().chart));
  });

  it('writes template delimiters as Helm strings that render back to them', () => {
    expect(helmLiteral('a {{ $value | humanize }} b {{x}}')).toBe('a {{ "{{" }} $value | humanize {{ "}}" }} b {{ "{{" }}x{{ "}}" }}');
    expect(helmLiteral('no templates')).toBe('no templates');
  });
});
