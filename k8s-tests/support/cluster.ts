/**
 * What the checks do with a control plane: install CRDs, server-side apply objects with strict
 * field validation (the way `kubectl apply --server-side --validate=strict` does), and ask RBAC
 * questions with SubjectAccessReviews.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseObjects, type K8sObject } from './manifests.js';
import type { ApiResponse, ControlPlane } from './control-plane.js';

interface Resource {
  plural: string;
  namespaced: boolean;
}

const FIELD_MANAGER = 'avatar-pipeline-k8s-tests';

export class Cluster {
  private resources = new Map<string, Resource>();

  constructor(readonly api: ControlPlane) {}

  /** Reads the API server's discovery: which resource serves each apiVersion and kind. */
  async discover(): Promise<void> {
    const versions = ['api/v1'];
    const groups = await this.api.request('GET', '/apis');
    for (const group of groups.body.groups as { versions: { groupVersion: string }[] }[]) {
      for (const v of group.versions) versions.push(`apis/${v.groupVersion}`);
    }
    await Promise.all(
      versions.map(async (path) => {
        const list = await this.api.request('GET', `/${path}`);
        if (list.status !== 200) return; // An aggregated API that is not served here.
        for (const r of list.body.resources as { name: string; kind: string; namespaced: boolean }[]) {
          if (r.name.includes('/')) continue; // Subresources.
          this.resources.set(`${list.body.groupVersion} ${r.kind}`, { plural: r.name, namespaced: r.namespaced });
        }
      }),
    );
  }

  path(object: K8sObject, options: { withName?: boolean } = {}): string {
    const resource = this.resources.get(`${object.apiVersion} ${object.kind}`);
    if (!resource) throw new Error(`the API server serves no ${object.apiVersion} ${object.kind}`);
    const base = object.apiVersion.includes('/') ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
    const namespace = resource.namespaced ? `/namespaces/${object.metadata.namespace ?? 'default'}` : '';
    return `${base}${namespace}/${resource.plural}${options.withName === false ? '' : `/${object.metadata.name}`}`;
  }

  /** Server-side apply; unknown or duplicate fields are errors, not warnings. */
  async apply(object: K8sObject, options: { dryRun?: boolean } = {}): Promise<ApiResponse> {
    const query = new URLSearchParams({ fieldManager: FIELD_MANAGER, fieldValidation: 'Strict', force: 'true' });
    if (options.dryRun) query.set('dryRun', 'All');
    return this.api.request('PATCH', `${this.path(object)}?${query}`, object, 'application/apply-patch+yaml');
  }

  /** Applies each object, returning a line per refusal: `Kind name: <the API server's message>`. */
  async applyAll(objects: readonly K8sObject[], options: { dryRun?: boolean } = {}): Promise<{ refused: string[]; warnings: string[] }> {
    const refused: string[] = [];
    const warnings: string[] = [];
    for (const object of objects) {
      const name = `${object.kind} ${object.metadata.name}`;
      const res = await this.apply(object, options);
      if (res.status >= 300) refused.push(`${name}: ${res.status} ${res.body?.message ?? JSON.stringify(res.body)}`);
      warnings.push(...res.warnings.map((w) => `${name}: ${w}`));
    }
    return { refused, warnings };
  }

  /** Installs CRDs from YAML files and waits until the API server serves them. */
  async installCrds(files: readonly string[]): Promise<void> {
    const crds = files.flatMap((f) => parseObjects(readFileSync(f, 'utf8'))).filter((o) => o?.kind === 'CustomResourceDefinition');
    this.resources.set('apiextensions.k8s.io/v1 CustomResourceDefinition', { plural: 'customresourcedefinitions', namespaced: false });
    const { refused } = await this.applyAll(crds);
    if (refused.length > 0) throw new Error(`CRDs refused:\n${refused.join('\n')}`);
    const deadline = Date.now() + 60_000;
    for (const crd of crds) {
      for (;;) {
        const res = await this.api.request('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`);
        const conditions = (res.body?.status?.conditions ?? []) as { type: string; status: string }[];
        if (conditions.some((c) => c.type === 'Established' && c.status === 'True')) break;
        if (Date.now() > deadline) throw new Error(`CRD ${crd.metadata.name} not established`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    await this.discover();
  }

  /**
   * May this service account do this? (SubjectAccessReview, answered by the RBAC authorizer.)
   * Resource attributes, or a non-resource URL such as `/openid/v1/jwks`.
   */
  async can(
    account: { namespace: string; name: string },
    attributes: { verb: string; resource: string; namespace: string; name?: string } | { verb: string; path: string },
  ): Promise<boolean> {
    const res = await this.api.request('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: `system:serviceaccount:${account.namespace}:${account.name}`,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${account.namespace}`, 'system:authenticated'],
        ...('path' in attributes ? { nonResourceAttributes: attributes } : { resourceAttributes: { group: '', version: 'v1', ...attributes } }),
      },
    });
    if (res.status !== 201) throw new Error(`SubjectAccessReview: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.status.allowed === true;
  }
}

/** The CRD files of a folder (Knative ships them in its modules' config/ folders). */
export const yamlFiles = (dir: string, match: (name: string) => boolean = () => true): string[] =>
  readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f) && match(f))
    .map((f) => join(dir, f));
