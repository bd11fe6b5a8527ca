/**
 * The NetworkPolicies (networkPolicy.enabled) as objects: the policies themselves are pure data
 * (network-policies.ts); here each is placed in the scope of the optional part it serves, with
 * the values of networkPolicy.* as its settings.
 */
import { ApiObject } from 'cdk8s';
import type { Construct } from 'constructs';
import { labels } from './common.js';
import { Condition, Conditional, num, value, type ConditionalProps } from './helm.js';
import { networkPolicies, type NetworkPolicyDef } from './network-policies.js';
import { settings } from './values.js';

const when: Readonly<Record<NonNullable<NetworkPolicyDef['when']>, Condition>> = {
  standIns: settings.standIns.enabled,
  devIssuer: settings.devIssuer,
  s3SourceWebhook: settings.s3Source.polls.not(),
  s3SourcePoller: settings.s3Source.polls,
  kubeApi: new Condition(`(or ${settings.eventsOidc.fromKubernetesApi.expression} ${settings.vapid.inSecret.expression})`),
  reconciler: settings.reconciler.enabled,
  tracing: settings.tracing.enabled,
  tracingStandIns: settings.tracing.enabled.and(settings.standIns.enabled),
};

/** The policies' switch (networkPolicy.enabled); the cluster's namespaces, DNS, Prometheus and peers are values (networkPolicy.*). */
export type NetworkPoliciesProps = ConditionalProps;

/** Every NetworkPolicy of networkPolicies(), each under the Conditional of the optional part it serves. */
export class NetworkPolicies extends Conditional {
  constructor(scope: Construct, id: string, props: NetworkPoliciesProps) {
    super(scope, id, props.when);
    const defs = networkPolicies({
      namespaces: {
        knativeServing: value('networkPolicy', 'namespaces', 'knativeServing'),
        knativeEventing: value('networkPolicy', 'namespaces', 'knativeEventing'),
        ingress: value('networkPolicy', 'namespaces', 'ingress'),
        dns: value('networkPolicy', 'namespaces', 'dns'),
      },
      dnsPodLabels: value('networkPolicy', 'dnsPodLabels'),
      prometheus: { namespace: value('networkPolicy', 'prometheus', 'namespace'), podLabels: value('networkPolicy', 'prometheus', 'podLabels') },
      kubeApiServer: { cidr: value('networkPolicy', 'kubeApiServer', 'cidr'), port: num('networkPolicy', 'kubeApiServer', 'port') },
      https: { cidr: value('networkPolicy', 'https', 'cidr'), except: value('networkPolicy', 'https', 'except') },
      gatewayFrom: value('networkPolicy', 'gatewayFrom'),
      tracingCollector: {
        namespace: value('tracing', 'collector', 'namespace'),
        podLabels: value('tracing', 'collector', 'podLabels'),
        ports: value('tracing', 'collector', 'ports'),
      },
    });
    for (const def of defs) {
      const parent = def.when ? new Conditional(this, `np-${def.name}-when`, when[def.when]) : this;
      new ApiObject(parent, `np-${def.name}`, {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: def.name, labels: labels(def.name, 'network-policy') },
        spec: def.spec,
      });
    }
  }
}
