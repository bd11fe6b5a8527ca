/**
 * The whole deployment as one cdk8s Chart written as a Helm template: shared configuration, a
 * Knative Service and ServiceAccount per service, the Broker and one Trigger per topology entry
 * (kit topology: the single source of truth, shared with the local broker), the dead-letter
 * Broker, SinkBindings, the VAPID init Job, the reconciler CronJob, the gateway, NetworkPolicies,
 * the optional stand-ins and dev issuer, and the observability objects. Everything that differs
 * between clusters is a value (values.ts); the release namespace holds every object.
 */
import { ApiObject, Chart, type ChartProps } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import { deadLetterSink, deliveryPolicies, eventAudience, serviceNames, sinkBound, triggers, type DeliveryPolicy, type Destination as Endpoint, type ServiceName, type TriggerSpec as TopologyTrigger } from '@avatar-pipeline/kit/topology';
import { BROKER_NAME, DEAD_LETTER_BROKER, labels, restrictedSecurityContext, SHARED_CONFIG, STAND_IN_CREDENTIALS } from './common.js';
import { DASHBOARD_UID, dashboard } from './dashboard.js';
import { DevIssuer } from './dev-issuer.js';
import { DEV_ISSUER, Gateway, GATEWAY_NAME, gatewayRoutes, MINIO_SERVICE } from './gateway.js';
import { asText, choose, Condition, Conditional, helmExpr, operand, setField } from './helm.js';
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
import { NetworkPolicies } from './network.js';
import { S3SourcePoller } from './s3-source.js';
import { asBoolean, eventEndpointEnv, needsApiToken, serviceProfiles, sinkTokenEnv, WEBHOOK_SECRET } from './services.js';
import { DYNAMODB_SERVICE, StandIns } from './stand-ins.js';
import { serviceUrl, settings, builtImage, type Workload } from './values.js';
import { Reconciler, RECONCILER } from './reconciler.js';
import { VapidInit, VAPID_INIT } from './vapid.js';

/** The services that read the VAPID keys (their profiles say so), by name. */
const vapidReaders = serviceNames.filter((name) => serviceProfiles[name].readsVapidSecret).sort();

/** The label that keeps a Knative Service off the public ingress. */
export const VISIBILITY_LABEL = 'networking.knative.dev/visibility';
const BROKER_CONFIG = 'avatar-pipeline-broker';
export const DEAD_LETTER_TRIGGER = 'profile-dead-letters';

/** An event endpoint, naming the audience of Knative's token: Serving sets none, and without one Knative sends no token. */
function eventDestination(endpoint: Endpoint): Destination {
  return serviceDestination(endpoint.service, endpoint.path, eventAudience(settings.namespace, endpoint.service));
}

/** A Trigger's delivery: its retry budget, and dead letters to the dead-letter Broker (profile consumes them from there). */
export function deliverySpec(policy: DeliveryPolicy): DeliverySpec {
  return {
    retry: policy.retry,
    backoffPolicy: policy.backoffPolicy,
    backoffDelay: policy.backoffDelay,
    timeout: policy.timeout,
    deadLetterSink: { ref: { ...BROKER, name: DEAD_LETTER_BROKER } },
  };
}

/** Variables every service shares, as a ConfigMap (envFrom). Empty values count as unset. */
export function sharedEnv(): Record<string, string> {
  const { auth } = settings;
  return {
    LOG_LEVEL: settings.logLevel,
    AWS_REGION: settings.region,
    TABLE_NAME: settings.table,
    BUCKET: settings.bucket,
    AVATAR_MAX_BYTES: asText(settings.avatarMaxBytes),
    JWT_ISSUER: choose(auth.singleIssuer, auth.issuer),
    JWT_JWKS_URL: choose(auth.singleIssuer, auth.jwksUrl),
    JWT_ISSUERS: auth.issuers,
    JWT_JWKS_URLS: auth.jwksUrls,
    JWT_AUDIENCE: auth.audience,
    JWT_CLIENT_IDS: auth.clientIds,
    JWT_ALGORITHMS: auth.algorithms,
    JWT_PLAYER_CLAIM: auth.playerClaim,
    JWT_ACCESS_PLAYER_CLAIM: auth.accessPlayerClaim,
    JWT_ROLES_CLAIM: auth.rolesClaim,
    MODERATOR_ROLE: auth.moderatorRole,
    EVENTS_OIDC_ISSUER: settings.eventsOidc.issuer,
    EVENTS_OIDC_JWKS_URL: settings.eventsOidc.jwksUrl,
    OTEL_EXPORTER_OTLP_ENDPOINT: settings.tracing.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: settings.tracing.protocol,
    OTEL_TRACES_SAMPLER: settings.tracing.sampler,
    OTEL_TRACES_SAMPLER_ARG: settings.tracing.samplerArg,
    AWS_ENDPOINT_URL_S3: choose(settings.standIns.enabled, `${serviceUrl(MINIO_SERVICE)}:9000`),
    AWS_ENDPOINT_URL_DYNAMODB: choose(settings.standIns.enabled, `${serviceUrl(DYNAMODB_SERVICE)}:8000`),
  };
}

/** A short hash Helm computes over rendered values. */
export const renderedHash = (value: unknown): string => helmExpr(`trunc 16 (sha256sum (toJson ${operand(value)}))`);

export class PipelineChart extends Chart {
  constructor(scope: Construct, id: string, props: ChartProps = {}) {
    super(scope, id, { ...props, namespace: settings.namespace, disableResourceNameHashes: true });

    const env = sharedEnv();
    new kplus.ConfigMap(this, 'shared-config', { metadata: { name: SHARED_CONFIG, labels: labels('avatar-pipeline', 'config') }, data: env });

    this.serviceAccounts();
    const webhook = new Conditional(this, 's3-source-webhook', settings.s3Source.polls.not());
    new kplus.Secret(webhook, 'webhook-token', {
      metadata: { name: WEBHOOK_SECRET, labels: labels('s3-source', 'webhook') },
      stringData: { token: settings.s3Source.webhookToken },
    });
    const configHash = renderedHash(env);
    for (const name of serviceNames) this.knativeService(name === 's3-source' ? webhook : this, name, configHash);
    // The parts' ids are part of the chart: cdk8s-plus labels a Deployment's pods with a hash of its
    // construct path (its selector, which cannot change in place), a Job's too (its name hashes its
    // spec), and names a RoleBinding after its subjects' paths (the sa-*-ref below). A renamed id is
    // a changed chart (cdk8s/test/charts.test.ts notices).
    const poller = new S3SourcePoller(this, 's3-source-poller', { when: settings.s3Source.polls, configHash });

    this.eventing(webhook, poller);
    new VapidInit(this, VAPID_INIT, {
      account: this.serviceAccountRef(VAPID_INIT),
      readers: vapidReaders.map((name) => this.serviceAccountRef(name)),
    });
    new Reconciler(this, RECONCILER, { when: settings.reconciler.enabled });
    new StandIns(this, 'stand-ins', { when: settings.standIns.enabled, webhookTokenSecret: WEBHOOK_SECRET });
    new DevIssuer(this, DEV_ISSUER, { when: settings.devIssuer });
    new Gateway(this, GATEWAY_NAME, { routes: gatewayRoutes() });
    new NetworkPolicies(this, 'network-policies', { when: settings.networkPolicy });
    this.observability();
  }

  /** A workload's ServiceAccount (serviceAccounts()) by name, in the release namespace: RoleBindings name the namespace of their subjects. */
  private serviceAccountRef(workload: Workload): kplus.IServiceAccount {
    return kplus.ServiceAccount.fromServiceAccountName(this, `sa-${workload}-ref`, workload, { namespaceName: settings.namespace });
  }

  /** One ServiceAccount per workload: its IAM role (IRSA) when set, no API token unless it needs one. */
  private serviceAccounts(): void {
    const workloads: Workload[] = [...serviceNames, VAPID_INIT, RECONCILER];
    for (const workload of workloads) {
      const account = new ApiObject(this, `sa-${workload}`, {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: workload, labels: labels(workload, 'identity') },
      });
      const role = settings.roleArn(workload);
      setField(account, '/metadata/annotations', helmExpr(`ternary (dict "eks.amazonaws.com/role-arn" ${operand(role)}) (dict) (not (empty ${operand(role)}))`));
      const token = workload === VAPID_INIT ? settings.vapid.inSecret : workload === RECONCILER ? new Condition('false') : needsApiToken(workload);
      setField(account, '/automountServiceAccountToken', asBoolean(token));
    }
  }

  private knativeService(scope: Construct, name: ServiceName, configHash: string): void {
    const profile = serviceProfiles[name];
    const scaling = settings.service(name);
    const env: EnvVar[] = [...profile.env(), ...eventEndpointEnv(name), ...sinkTokenEnv(name)];
    const spec: KnativeServiceSpec = {
      template: {
        metadata: {
          labels: labels(name, 'service'),
          annotations: {
            'autoscaling.knative.dev/min-scale': asText(scaling.minScale),
            'autoscaling.knative.dev/max-scale': asText(scaling.maxScale),
            'autoscaling.knative.dev/target': asText(scaling.target),
            // A changed ConfigMap rolls a new revision (Knative reads env only at pod start).
            'avatar-pipeline/config-hash': configHash,
          },
        },
        spec: {
          serviceAccountName: name,
          containerConcurrency: scaling.containerConcurrency,
          timeoutSeconds: profile.timeoutSeconds,
          enableServiceLinks: false,
          containers: [
            {
              name,
              image: builtImage(name),
              imagePullPolicy: settings.imagePullPolicy,
              ports: [{ name: 'http1', containerPort: 8080 }],
              // Optional: only the stand-ins have credentials (EKS uses IRSA).
              envFrom: [{ configMapRef: { name: SHARED_CONFIG } }, { secretRef: { name: STAND_IN_CREDENTIALS, optional: true } }],
              ...(env.length > 0 ? { env } : {}),
              resources: scaling.resources,
              // Knative probes the serving port; the queue-proxy runs the readiness probe itself, every
              // few milliseconds while a pod starts when periodSeconds is unset (and then refuses a
              // timeoutSeconds: Knative's validation says so, k8s-tests/knative.test.ts runs it).
              readinessProbe: { httpGet: { path: '/readyz' } },
              livenessProbe: {
                httpGet: { path: '/healthz' },
                initialDelaySeconds: profile.livenessDelaySeconds,
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
    new KnativeService(scope, `ksvc-${name}`, {
      metadata: { name, labels: { ...labels(name, 'service'), [VISIBILITY_LABEL]: 'cluster-local' } },
      spec,
    });
  }

  private eventing(webhook: Construct, poller: Construct): void {
    // A plain object: cdk8s-plus would take the placeholder for a map and split it into characters.
    const brokerConfig = new ApiObject(this, 'broker-config', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: BROKER_CONFIG, labels: labels(BROKER_NAME, 'eventing') },
    });
    setField(brokerConfig, '/data', settings.broker.config);
    const config = { apiVersion: 'v1', kind: 'ConfigMap', name: BROKER_CONFIG, namespace: settings.namespace };
    const broker = (id: string, name: string, delivery?: DeliverySpec) =>
      new Broker(this, id, {
        metadata: { name, labels: labels(name, 'eventing'), annotations: { 'eventing.knative.dev/broker.class': settings.broker.class } },
        spec: { config, ...(delivery ? { delivery } : {}) },
      });
    // Defaults for triggers that set none (every topology trigger sets its own).
    broker('broker', BROKER_NAME, deliverySpec(deliveryPolicies.processing));
    // Dead letters wait here until profile takes them: with a durable class they survive restarts,
    // and profile being down only delays them (its Trigger retries for the processing budget).
    broker('dead-letter-broker', DEAD_LETTER_BROKER);
    const { retry, backoffPolicy, backoffDelay, timeout } = deliveryPolicies.deadLetters;
    new Trigger(this, 'trigger-dead-letters', {
      metadata: { name: DEAD_LETTER_TRIGGER, labels: labels(deadLetterSink.service, 'eventing') },
      spec: { broker: DEAD_LETTER_BROKER, subscriber: eventDestination(deadLetterSink), delivery: { retry, backoffPolicy, backoffDelay, timeout } },
    });
    for (const trigger of triggers) this.trigger(trigger);
    for (const name of serviceNames.filter((n) => sinkBound.has(n) && n !== 's3-source')) this.sinkBinding(this, name, 'Service');
    this.sinkBinding(webhook, 's3-source', 'Service');
    this.sinkBinding(poller, 's3-source', 'Deployment');
  }

  private sinkBinding(scope: Construct, name: ServiceName, kind: 'Service' | 'Deployment'): void {
    new SinkBinding(scope, `sink-${name}`, {
      metadata: { name: `${name}-to-broker`, labels: labels(name, 'eventing') },
      spec: {
        subject: kind === 'Service' ? { apiVersion: 'serving.knative.dev/v1', kind, name } : { apiVersion: 'apps/v1', kind, name },
        sink: { ref: { ...BROKER, name: BROKER_NAME } },
      },
    });
  }

  private trigger(trigger: TopologyTrigger): void {
    new Trigger(this, `trigger-${trigger.name}`, {
      metadata: { name: trigger.name, labels: labels(trigger.subscriber.service, 'eventing') },
      spec: {
        broker: BROKER_NAME,
        filters: trigger.filters,
        subscriber: eventDestination(trigger.subscriber),
        delivery: deliverySpec(trigger.delivery),
      },
    });
  }

  private observability(): void {
    // Prometheus selects PodMonitors and rules by label (kube-prometheus-stack: its release).
    const selected = (object: ApiObject, name: string) =>
      setField(object, '/metadata/labels', helmExpr(`merge ${operand(labels(name, 'monitoring'))} ${operand(settings.monitoringLabels)}`));
    for (const name of serviceNames) {
      selected(new PodMonitor(this, `podmonitor-${name}`, { metadata: { name }, spec: podMonitorSpec(name) }), name);
    }
    selected(new PrometheusRule(this, 'rules', { metadata: { name: 'avatar-pipeline' }, spec: alertRules(settings.runbookUrl) }), 'avatar-pipeline');
    new kplus.ConfigMap(this, 'dashboard', {
      metadata: { name: 'avatar-pipeline-dashboard', labels: { ...labels('avatar-pipeline', 'monitoring'), grafana_dashboard: '1' } },
      data: { [`${DASHBOARD_UID}.json`]: JSON.stringify(dashboard(), null, 2) },
    });
  }
}
