/**
 * The release namespace's NetworkPolicies (networking.k8s.io/v1), as plain definitions: a pure
 * function of the settings, no cdk8s constructs, so the Helm chart can render them with values.
 *
 * Default deny, both directions: one policy isolates every pod of the namespace for ingress and
 * egress, every other policy opens exactly one need. NetworkPolicies are additive (a pod may do
 * what any policy selecting it allows), so each need is its own policy, and what exists only with
 * an optional part of the chart (the kind stand-ins, the dev issuer, the SQS poller, the Kubernetes
 * API, the reconciler) is marked `when` and rendered only with it.
 *
 * Traffic as it really flows (ports are the pods' own: policies match after Service translation):
 * - Knative Services are reached through Knative's data plane only: the ingress (Kourier: every
 *   cluster-local name, including the gateway's and MinIO's webhook, is an ExternalName to its
 *   internal gateway) and the activator send to the queue-proxy (8012 http1, 8013 h2c, 8112 with
 *   system-internal-tls); the autoscaler scrapes the queue-proxy's 9090. The user container (8080)
 *   is reached only from Prometheus (the PodMonitors scrape `user-port` directly, see monitoring.ts).
 * - The gateway is the public edge; it reaches the public APIs through Knative's ingress namespace.
 * - Services that originate events (kit topology `sinkBound`) and the reconciler CronJob post to
 *   the broker ingress in knative-eventing (container ports 8080, 8443); the others reply in the
 *   HTTP response.
 *
 * Every settings value may be an opaque Helm placeholder that renders only at `helm template`:
 * this module places settings values into the specs and never reads into them (no iteration,
 * spreading, indexing, comparison or branching on a value).
 */
import { eventConsumers, publicServices, serviceNames, sinkBound, type ServiceName } from '@avatar-pipeline/kit/topology';

/** Kubernetes LabelSelector (only equality and set operators: what the invariants evaluate). */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

export interface IpBlock {
  cidr: string;
  except?: string[];
}

/** networking.k8s.io/v1 NetworkPolicyPeer. */
export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: IpBlock;
}

export interface NetworkPolicyPort {
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  /** A number or the name of a container port. */
  port?: number | string;
  endPort?: number;
}

export interface NetworkPolicyIngressRule {
  ports?: NetworkPolicyPort[];
  /** Missing or empty: every source. */
  from?: NetworkPolicyPeer[];
}

export interface NetworkPolicyEgressRule {
  ports?: NetworkPolicyPort[];
  /** Missing or empty: every destination. */
  to?: NetworkPolicyPeer[];
}

/** networking.k8s.io/v1 NetworkPolicySpec. */
export interface NetworkPolicySpec {
  podSelector: LabelSelector;
  policyTypes: ('Ingress' | 'Egress')[];
  ingress?: NetworkPolicyIngressRule[];
  egress?: NetworkPolicyEgressRule[];
}

export interface NetworkPolicySettings {
  namespaces: {
    knativeServing: string;
    knativeEventing: string;
    /** Knative's ingress (e.g. kourier-system): every cluster-local Knative address leads there. */
    ingress: string;
    /** Where the cluster DNS runs (e.g. kube-system). */
    dns: string;
  };
  /** Labels of the cluster DNS pods (e.g. k8s-app: kube-dns). */
  dnsPodLabels: Record<string, string>;
  prometheus: { namespace: string; podLabels: Record<string, string> };
  /**
   * Where the Kubernetes API is, as the pods' packets reach it (after the `kubernetes` Service's
   * translation: kind's API server listens on 6443 on the control-plane node, EKS's on 443): the
   * events-OIDC JWKS and the VAPID Secret are read from it on kind.
   */
  kubeApiServer: { cidr: string; port: number };
  /** HTTPS egress (AWS endpoints, Cognito and EKS OIDC JWKS, Web Push services): cidr + except list. */
  https: { cidr: string; except: string[] };
  /** The OpenTelemetry collector's pods (tracing on): where the services export OTLP. */
  tracingCollector: { namespace: string; podLabels: Record<string, string>; ports: NetworkPolicyPort[] };
  /** Peers allowed to reach the gateway's public port; [] = anyone (the public edge). */
  gatewayFrom: NetworkPolicyPeer[];
}

/** The optional parts of the chart a policy exists with. */
export type NetworkPolicyCondition =
  /** MinIO, DynamoDB Local and their setup Job (kind). */
  | 'standIns'
  /** The dev token issuer (kind). */
  | 'devIssuer'
  /** s3-source as a Knative Service fed by MinIO's webhook (kind): it needs nothing beyond every Knative Service's policies, so no policy carries it today. */
  | 's3SourceWebhook'
  /** s3-source as a Deployment polling SQS (EKS). */
  | 's3SourcePoller'
  /** Pods read the Kubernetes API: events-OIDC keys (`eventsOidc.fromKubernetesApi`) or the VAPID Secret (`vapid.store: k8s-secret`). */
  | 'kubeApi'
  /** The reconciler CronJob (`reconciler.enabled`). */
  | 'reconciler'
  /** Tracing on (`tracing.endpoint` set): the services export to the collector. */
  | 'tracing'
  /** Tracing on with the stand-ins: s3-source reads each upload's recorded trace from DynamoDB Local. */
  | 'tracingStandIns';

export interface NetworkPolicyDef {
  name: string;
  /** Render only when this part of the chart is. */
  when?: NetworkPolicyCondition;
  spec: NetworkPolicySpec;
}

/** Every pod template of the chart carries it. */
export const APP_NAME_LABEL = 'app.kubernetes.io/name';
/** Knative sets it on every revision pod (the chart's templates do not carry it). */
export const KNATIVE_SERVICE_POD_LABEL = 'serving.knative.dev/service';
/** Kubernetes sets it on every namespace (1.22+). */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

/**
 * The chart's workloads by their `app.kubernetes.io/name` (gateway.ts, dev-issuer.ts, stand-ins.ts,
 * vapid.ts, s3-source.ts, reconciler.ts). A rename there shows as a policy selecting no pod (k8s-tests invariants).
 */
export const WORKLOADS = {
  gateway: 'gateway',
  devIssuer: 'dev-issuer',
  minio: 'minio',
  dynamodb: 'dynamodb',
  standInsSetup: 'stand-ins-setup',
  vapidInit: 'vapid-init',
  s3Source: 's3-source',
  push: 'push',
  reconciler: 'reconciler',
} as const satisfies Record<string, string>;

export const GATEWAY_PORT = 8080;
export const DEV_ISSUER_PORT = 8080;
export const MINIO_PORT = 9000;
export const DYNAMODB_PORT = 8000;
/** The services' own port (Knative's `user-port`): metrics for Prometheus. */
export const USER_PORT = 8080;
/** queue-proxy: http1, h2c and https (system-internal-tls) request ports (knative.dev/serving pkg/networking). */
export const QUEUE_PROXY_PORTS = [8012, 8013, 8112] as const;
/** queue-proxy: the autoscaler's metrics. */
export const QUEUE_PROXY_AUTOSCALER_PORT = 9090;
/** The broker ingress pods' http and https ports (mt-channel-broker's broker-ingress). */
export const BROKER_INGRESS_PORTS = [8080, 8443] as const;
export const HTTPS_PORT = 443;
export const DNS_PORT = 53;

/** Services using S3 (MinIO on kind): presign checks the bucket, moderate/thumbnail/profile read, write or delete objects. */
const S3_CLIENTS: readonly string[] = ['presign', 'moderate', 'thumbnail', 'profile'] satisfies ServiceName[];
/** Every service but s3-source uses the table. */
const TABLE_CLIENTS: readonly string[] = serviceNames.filter((name) => name !== WORKLOADS.s3Source);
/** Services that export traces (tracing on): every service; the reconciler does not trace. */
const TRACING_CLIENTS: readonly string[] = serviceNames;
/** Services that read the VAPID keys (from a Secret on kind). */
const VAPID_READERS: readonly string[] = ['subscribe', 'push'] satisfies ServiceName[];

const sorted = (names: Iterable<string>) => [...new Set(names)].sort();

/** Who reaches what, once: each set selects the clients' egress and names the server's ingress. */
export const CLIENTS = {
  /** The gateway's /s3 and /media routes, the services' S3 clients, the reconciler and the setup Job. */
  minio: sorted([WORKLOADS.gateway, ...S3_CLIENTS, WORKLOADS.reconciler, WORKLOADS.standInsSetup]),
  dynamodb: sorted([...TABLE_CLIENTS, WORKLOADS.reconciler, WORKLOADS.standInsSetup]),
  /** The gateway's /dev and /.well-known routes and the services that verify player JWTs (the public APIs). */
  devIssuer: sorted([WORKLOADS.gateway, ...publicServices]),
  /** Everything that talks to AWS, Cognito, the EKS OIDC keys or push services over HTTPS (s3-source only as the SQS poller). */
  https: sorted(serviceNames.filter((name) => name !== WORKLOADS.s3Source)),
  /** Event endpoints checking Knative's tokens against the API's JWKS, the VAPID readers and the init Job. */
  kubeApi: sorted([...eventConsumers, ...VAPID_READERS, WORKLOADS.vapidInit]),
  /** Services that post to K_SINK (kit topology). */
  broker: sorted(sinkBound),
  tracingCollector: sorted(TRACING_CLIENTS),
};

const byName = (name: string): LabelSelector => ({ matchLabels: { [APP_NAME_LABEL]: name } });
const byNames = (names: readonly string[]): LabelSelector => ({ matchExpressions: [{ key: APP_NAME_LABEL, operator: 'In', values: [...names] }] });
/** Every Knative revision pod of the namespace. */
const knativePods = (): LabelSelector => ({ matchExpressions: [{ key: KNATIVE_SERVICE_POD_LABEL, operator: 'Exists' }] });
const namespace = (name: string): LabelSelector => ({ matchLabels: { [NAMESPACE_NAME_LABEL]: name } });
const tcp = (...ports: readonly number[]): NetworkPolicyPort[] => ports.map((port) => ({ protocol: 'TCP', port }));

export function networkPolicies(s: NetworkPolicySettings): NetworkPolicyDef[] {
  const ns = s.namespaces;
  // Fresh objects at every use: a serializer may write a shared one as a YAML alias.
  const https = (): NetworkPolicyEgressRule => ({ to: [{ ipBlock: { cidr: s.https.cidr, except: s.https.except } }], ports: tcp(HTTPS_PORT) });
  // Every port of Knative's ingress namespace: its listeners are the ingress's own (Kourier's internal one: 8081).
  const knativeIngress = (): NetworkPolicyEgressRule => ({ to: [{ namespaceSelector: namespace(ns.ingress) }] });
  const prometheus = (): NetworkPolicyIngressRule => ({
    from: [{ namespaceSelector: namespace(s.prometheus.namespace), podSelector: { matchLabels: s.prometheus.podLabels } }],
    ports: tcp(USER_PORT),
  });
  return [
    // Nothing reaches or leaves a pod of the namespace unless a policy below names it.
    { name: 'default-deny', spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] } },
    // Every pod resolves names (the AWS endpoints, Knative's cluster-local names) with the cluster DNS, and nothing else there.
    {
      name: 'allow-dns',
      spec: {
        podSelector: {},
        policyTypes: ['Egress'],
        egress: [
          {
            to: [{ namespaceSelector: namespace(ns.dns), podSelector: { matchLabels: s.dnsPodLabels } }],
            ports: [
              { protocol: 'UDP', port: DNS_PORT },
              { protocol: 'TCP', port: DNS_PORT },
            ],
          },
        ],
      },
    },
    // Knative Services take requests only from Knative's data plane, at the queue-proxy: the activator and autoscaler (knative-serving), the ingress (the gateway's and MinIO's requests arrive through it) and the broker.
    {
      name: 'knative-data-plane',
      spec: {
        podSelector: knativePods(),
        policyTypes: ['Ingress'],
        ingress: [
          { from: [{ namespaceSelector: namespace(ns.knativeServing) }], ports: tcp(...QUEUE_PROXY_PORTS, QUEUE_PROXY_AUTOSCALER_PORT) },
          { from: [{ namespaceSelector: namespace(ns.ingress) }, { namespaceSelector: namespace(ns.knativeEventing) }], ports: tcp(...QUEUE_PROXY_PORTS) },
        ],
      },
    },
    // Prometheus scrapes the services' /metrics on the user container's port (the PodMonitors bypass the queue-proxy).
    {
      name: 'knative-metrics',
      spec: {
        podSelector: knativePods(),
        policyTypes: ['Ingress'],
        ingress: [prometheus()],
      },
    },
    // The public edge: its port from the configured peers (none configured: from anyone); it forwards to the public APIs through Knative's ingress.
    {
      name: 'gateway',
      spec: {
        podSelector: byName(WORKLOADS.gateway),
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: s.gatewayFrom, ports: tcp(GATEWAY_PORT) }],
        egress: [knativeIngress()],
      },
    },
    // AWS (S3, DynamoDB, Rekognition, SSM, Cognito, STS for IRSA), the JWKS of Cognito and the EKS OIDC issuer, and push services: HTTPS only.
    { name: 'https-egress', spec: { podSelector: byNames(CLIENTS.https), policyTypes: ['Egress'], egress: [https()] } },
    // The services that originate events post them to the broker ingress (K_SINK); the others reply in the HTTP response.
    {
      name: 'broker-egress',
      spec: {
        podSelector: byNames(CLIENTS.broker),
        policyTypes: ['Egress'],
        egress: [{ to: [{ namespaceSelector: namespace(ns.knativeEventing) }], ports: tcp(...BROKER_INGRESS_PORTS) }],
      },
    },
    // The reconciler CronJob's pods: nothing calls them; they use AWS over HTTPS (MinIO and DynamoDB Local on kind: minio-clients, dynamodb-clients) and post outcomes to the broker ingress (K_SINK).
    {
      name: WORKLOADS.reconciler,
      when: 'reconciler',
      spec: {
        podSelector: byName(WORKLOADS.reconciler),
        policyTypes: ['Ingress', 'Egress'],
        egress: [https(), { to: [{ namespaceSelector: namespace(ns.knativeEventing) }], ports: tcp(...BROKER_INGRESS_PORTS) }],
      },
    },
    // A run-once Job: nothing calls it; it writes the VAPID keys to SSM over HTTPS (to a Secret through the Kubernetes API on kind: kube-api).
    { name: WORKLOADS.vapidInit, spec: { podSelector: byName(WORKLOADS.vapidInit), policyTypes: ['Ingress', 'Egress'], egress: [https()] } },
    // The Kubernetes API: the events-OIDC JWKS for the event endpoints, the VAPID Secret for its readers and the init Job.
    {
      name: 'kube-api-egress',
      when: 'kubeApi',
      spec: {
        podSelector: byNames(CLIENTS.kubeApi),
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: s.kubeApiServer.cidr } }], ports: [{ protocol: 'TCP', port: s.kubeApiServer.port }] }],
      },
    },
    // The SQS poller has no HTTP traffic but Prometheus's scrapes, and polls SQS over HTTPS.
    {
      name: 's3-source-poller',
      when: 's3SourcePoller',
      spec: {
        podSelector: byName(WORKLOADS.s3Source),
        policyTypes: ['Ingress', 'Egress'],
        ingress: [prometheus()],
        egress: [https()],
      },
    },
    // The dev issuer serves tokens through the gateway and its JWKS to the services that verify player JWTs; it calls nothing.
    {
      name: WORKLOADS.devIssuer,
      when: 'devIssuer',
      spec: {
        podSelector: byName(WORKLOADS.devIssuer),
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [{ podSelector: byNames(CLIENTS.devIssuer) }], ports: tcp(DEV_ISSUER_PORT) }],
      },
    },
    // The dev issuer's clients may reach it.
    {
      name: 'dev-issuer-clients',
      when: 'devIssuer',
      spec: { podSelector: byNames(CLIENTS.devIssuer), policyTypes: ['Egress'], egress: [{ to: [{ podSelector: byName(WORKLOADS.devIssuer) }], ports: tcp(DEV_ISSUER_PORT) }] },
    },
    // MinIO serves S3 to the gateway, the services and the setup Job, and posts bucket notifications to s3-source's webhook through Knative's ingress.
    {
      name: WORKLOADS.minio,
      when: 'standIns',
      spec: {
        podSelector: byName(WORKLOADS.minio),
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [{ podSelector: byNames(CLIENTS.minio) }], ports: tcp(MINIO_PORT) }],
        egress: [knativeIngress()],
      },
    },
    // MinIO's clients may reach it.
    {
      name: 'minio-clients',
      when: 'standIns',
      spec: { podSelector: byNames(CLIENTS.minio), policyTypes: ['Egress'], egress: [{ to: [{ podSelector: byName(WORKLOADS.minio) }], ports: tcp(MINIO_PORT) }] },
    },
    // DynamoDB Local serves the table to the services and the setup Job; it calls nothing.
    {
      name: WORKLOADS.dynamodb,
      when: 'standIns',
      spec: {
        podSelector: byName(WORKLOADS.dynamodb),
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [{ podSelector: byNames(CLIENTS.dynamodb) }], ports: tcp(DYNAMODB_PORT) }],
      },
    },
    // DynamoDB Local's clients may reach it.
    {
      name: 'dynamodb-clients',
      when: 'standIns',
      spec: { podSelector: byNames(CLIENTS.dynamodb), policyTypes: ['Egress'], egress: [{ to: [{ podSelector: byName(WORKLOADS.dynamodb) }], ports: tcp(DYNAMODB_PORT) }] },
    },
    // Tracing on: every service exports OTLP to the collector's pods (a collector outside the cluster on 443 goes through https-egress).
    {
      name: 'tracing-egress',
      when: 'tracing',
      spec: {
        podSelector: byNames(CLIENTS.tracingCollector),
        policyTypes: ['Egress'],
        egress: [
          {
            to: [{ namespaceSelector: namespace(s.tracingCollector.namespace), podSelector: { matchLabels: s.tracingCollector.podLabels } }],
            ports: s.tracingCollector.ports,
          },
        ],
      },
    },
    // Tracing on with the stand-ins: s3-source reads the trace presign recorded with each upload from DynamoDB Local (on AWS through https-egress, or the poller's).
    {
      name: 's3-source-trace-lookup',
      when: 'tracingStandIns',
      spec: { podSelector: byName(WORKLOADS.s3Source), policyTypes: ['Egress'], egress: [{ to: [{ podSelector: byName(WORKLOADS.dynamodb) }], ports: tcp(DYNAMODB_PORT) }] },
    },
    {
      name: 'dynamodb-from-s3-source',
      when: 'tracingStandIns',
      spec: { podSelector: byName(WORKLOADS.dynamodb), policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: byName(WORKLOADS.s3Source) }], ports: tcp(DYNAMODB_PORT) }] },
    },
    // The setup Job takes no connections (its egress: minio-clients and dynamodb-clients).
    { name: WORKLOADS.standInsSetup, when: 'standIns', spec: { podSelector: byName(WORKLOADS.standInsSetup), policyTypes: ['Ingress'] } },
  ];
}
