/**
 * The whole deployment of one environment as one cdk8s Chart: namespace, shared configuration,
 * a Knative Service and ServiceAccount per service, the Broker and one Trigger per topology
 * entry (kit topology: the single source of truth, shared with the local broker), SinkBindings,
 * the VAPID init Job, the gateway, the kind stand-ins and the observability objects.
 */
import { createHash } from 'node:crypto';
import { Chart, type ChartProps } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import {
  deliveryPolicies,
  eventAudience,
  serviceNames,
  sinkBound,
  triggers,
  type DeliveryPolicy,
  type Destination as Endpoint,
  type ServiceName,
  type TriggerSpec as TopologyTrigger,
} from '@avatar-pipeline/kit';
import { BROKER_NAME, builtImage, labels, restrictedSecurityContext, SHARED_CONFIG, STAND_IN_CREDENTIALS } from './common.js';
import { serviceUrl, type EnvironmentConfig, type Workload } from './config.js';
import { DASHBOARD_UID, dashboard } from './dashboard.js';
import { createDevIssuer } from './dev-issuer.js';
import { createGateway, MINIO_SERVICE } from './gateway.js';
import {
  BROKER,
  Broker,
  KnativeService,
  serviceDestination,
  SinkBinding,
  Trigger,
  type DeliverySpec,
  type Destination,
  type EnvVar,
  type KnativeServiceSpec,
} from './knative.js';
import { alertRules, PodMonitor, podMonitorSpec, PrometheusRule } from './monitoring.js';
import { eventEndpointEnv, minScale, needsApiToken, serviceProfiles, sinkTokenEnv } from './services.js';
import { createStandIns, DYNAMODB_SERVICE } from './stand-ins.js';
import { createVapidInit, VAPID_INIT } from './vapid.js';

/** The label that keeps a Knative Service off the public ingress. */
export const VISIBILITY_LABEL = 'networking.knative.dev/visibility';

/** An event endpoint, naming the audience of Knative's token: Serving sets none, and without one Knative sends no token. */
function eventDestination(endpoint: Endpoint, config: EnvironmentConfig): Destination {
  return serviceDestination(endpoint.service, endpoint.path, eventAudience(config.namespace, endpoint.service));
}

export function deliverySpec(policy: DeliveryPolicy, config: EnvironmentConfig): DeliverySpec {
  return {
    retry: policy.retry,
    backoffPolicy: policy.backoffPolicy,
    backoffDelay: policy.backoffDelay,
    timeout: policy.timeout,
    deadLetterSink: eventDestination(policy.deadLetter, config),
  };
}

/** Variables every service shares, as a ConfigMap (envFrom). */
export function sharedEnv(config: EnvironmentConfig): Record<string, string> {
  const { auth } = config;
  return {
    LOG_LEVEL: config.logLevel,
    AWS_REGION: config.region,
    TABLE_NAME: config.table,
    BUCKET: config.bucket,
    AVATAR_MAX_BYTES: String(config.avatarMaxBytes),
    JWT_ISSUER: auth.issuer,
    JWT_JWKS_URL: auth.jwksUrl,
    JWT_AUDIENCE: auth.audience,
    JWT_ALGORITHMS: auth.algorithms.join(','),
    JWT_PLAYER_CLAIM: auth.playerClaim,
    EVENTS_OIDC_ISSUER: config.eventsOidc.issuer,
    EVENTS_OIDC_JWKS_URL: config.eventsOidc.jwksUrl,
    ...(config.standIns
      ? {
          AWS_ENDPOINT_URL_S3: `${serviceUrl(config, MINIO_SERVICE)}:9000`,
          AWS_ENDPOINT_URL_DYNAMODB: `${serviceUrl(config, DYNAMODB_SERVICE)}:8000`,
        }
      : {}),
  };
}

const hash = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);

export interface PipelineChartProps extends ChartProps {
  config: EnvironmentConfig;
}

export class PipelineChart extends Chart {
  readonly config: EnvironmentConfig;

  constructor(scope: Construct, id: string, props: PipelineChartProps) {
    const { config } = props;
    super(scope, id, { ...props, namespace: config.namespace, disableResourceNameHashes: true, labels: { 'app.kubernetes.io/part-of': 'avatar-pipeline' } });
    this.config = config;

    new kplus.Namespace(this, 'namespace', {
      metadata: {
        name: config.namespace,
        labels: {
          // Every pod here meets the restricted standard; report (not yet block) any that does not.
          'pod-security.kubernetes.io/warn': 'restricted',
          'pod-security.kubernetes.io/audit': 'restricted',
          // SinkBindings act here whether Eventing selects namespaces by inclusion or exclusion.
          'bindings.knative.dev/include': 'true',
        },
      },
    });
    const env = sharedEnv(config);
    new kplus.ConfigMap(this, 'shared-config', { metadata: { name: SHARED_CONFIG, labels: labels('avatar-pipeline', 'config') }, data: env });

    const accounts = this.serviceAccounts();
    for (const name of serviceNames) this.knativeService(name, accounts[name], hash(env));

    this.eventing();
    createVapidInit(this, config, accounts[VAPID_INIT], [accounts.push, accounts.subscribe]);
    if (config.standIns) createStandIns(this, config, config.standIns);
    if (config.devIssuer) createDevIssuer(this, config);
    createGateway(this, config);
    this.observability();
  }

  /** One ServiceAccount per workload: its IAM role on EKS, no API token unless it needs one. */
  private serviceAccounts(): Record<Workload, kplus.IServiceAccount> {
    const { config } = this;
    const workloads: Workload[] = [...serviceNames, VAPID_INIT];
    return Object.fromEntries(
      workloads.map((workload) => {
        const role = config.roles?.[workload];
        const needsToken = workload === VAPID_INIT ? config.vapid.store === 'k8s-secret' : needsApiToken(workload, config);
        new kplus.ServiceAccount(this, `sa-${workload}`, {
          metadata: {
            name: workload,
            labels: labels(workload, 'identity'),
            ...(role ? { annotations: { 'eks.amazonaws.com/role-arn': role } } : {}),
          },
          automountToken: needsToken,
        });
        // By name: cdk8s-plus classes do not satisfy their interfaces under exactOptionalPropertyTypes.
        // In the chart's namespace, where the account above is created (RoleBindings name it there).
        return [workload, kplus.ServiceAccount.fromServiceAccountName(this, `sa-${workload}-ref`, workload, { namespaceName: config.namespace })];
      }),
    ) as Record<Workload, kplus.IServiceAccount>;
  }

  private knativeService(name: ServiceName, account: kplus.IServiceAccount, configHash: string): void {
    const { config } = this;
    const profile = serviceProfiles[name];
    const usesStandIns = Boolean(config.standIns) && name !== 's3-source';
    const env: EnvVar[] = [...profile.env(config), ...eventEndpointEnv(name, config), ...sinkTokenEnv(name)];
    const spec: KnativeServiceSpec = {
      template: {
        metadata: {
          labels: labels(name, 'service'),
          annotations: {
            'autoscaling.knative.dev/min-scale': String(minScale(name, config)),
            'autoscaling.knative.dev/max-scale': String(profile.maxScale),
            'autoscaling.knative.dev/target': String(profile.target),
            // A changed ConfigMap rolls a new revision (Knative reads env only at pod start).
            'avatar-pipeline/config-hash': configHash,
          },
        },
        spec: {
          serviceAccountName: account.name,
          containerConcurrency: profile.containerConcurrency,
          timeoutSeconds: profile.timeoutSeconds,
          enableServiceLinks: false,
          containers: [
            {
              name,
              image: builtImage(config, name),
              ports: [{ name: 'http1', containerPort: 8080 }],
              envFrom: [{ configMapRef: { name: SHARED_CONFIG } }, ...(usesStandIns ? [{ secretRef: { name: STAND_IN_CREDENTIALS } }] : [])],
              ...(env.length > 0 ? { env } : {}),
              resources: profile.resources,
              // Knative probes the serving port; the queue-proxy runs the readiness probe itself, every
              // few milliseconds while a pod starts when periodSeconds is unset (and then refuses a
              // timeoutSeconds: Knative's validation says so, k8s-tests/knative.test.ts runs it).
              readinessProbe: { httpGet: { path: '/readyz' } },
              livenessProbe: {
                httpGet: { path: '/healthz' },
                initialDelaySeconds: name === 'moderate' ? 20 : 5,
                periodSeconds: 10,
                timeoutSeconds: 3,
                failureThreshold: 3,
              },
              securityContext: restrictedSecurityContext(),
              volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
            },
          ],
          volumes: [{ name: 'tmp', emptyDir: { sizeLimit: profile.tmpSize } }],
        },
      },
    };
    new KnativeService(this, `ksvc-${name}`, {
      metadata: { name, labels: { ...labels(name, 'service'), [VISIBILITY_LABEL]: 'cluster-local' } },
      spec,
    });
  }

  private eventing(): void {
    new Broker(this, 'broker', {
      metadata: {
        name: BROKER_NAME,
        labels: labels(BROKER_NAME, 'eventing'),
        annotations: { 'eventing.knative.dev/broker.class': 'MTChannelBasedBroker' },
      },
      // Defaults for triggers that set none (every topology trigger sets its own).
      spec: { delivery: deliverySpec(deliveryPolicies.processing, this.config) },
    });
    for (const trigger of triggers) this.trigger(trigger);
    for (const name of serviceNames.filter((n) => sinkBound.has(n))) {
      new SinkBinding(this, `sink-${name}`, {
        metadata: { name: `${name}-to-broker`, labels: labels(name, 'eventing') },
        spec: {
          subject: { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name },
          sink: { ref: { ...BROKER, name: BROKER_NAME } },
        },
      });
    }
  }

  private trigger(trigger: TopologyTrigger): void {
    new Trigger(this, `trigger-${trigger.name}`, {
      metadata: { name: trigger.name, labels: labels(trigger.subscriber.service, 'eventing') },
      spec: {
        broker: BROKER_NAME,
        filters: trigger.filters,
        subscriber: eventDestination(trigger.subscriber, this.config),
        delivery: deliverySpec(trigger.delivery, this.config),
      },
    });
  }

  private observability(): void {
    // Prometheus selects PodMonitors and rules by label (kube-prometheus-stack: its release).
    const selected = (name: string) => ({ ...labels(name, 'monitoring'), ...this.config.monitoring.selectorLabels });
    for (const name of serviceNames) {
      new PodMonitor(this, `podmonitor-${name}`, { metadata: { name, labels: selected(name) }, spec: podMonitorSpec(name) });
    }
    new PrometheusRule(this, 'rules', { metadata: { name: 'avatar-pipeline', labels: selected('avatar-pipeline') }, spec: alertRules() });
    new kplus.ConfigMap(this, 'dashboard', {
      metadata: { name: 'avatar-pipeline-dashboard', labels: { ...labels('avatar-pipeline', 'monitoring'), grafana_dashboard: '1' } },
      data: { [`${DASHBOARD_UID}.json`]: JSON.stringify(dashboard(), null, 2) },
    });
  }
}
