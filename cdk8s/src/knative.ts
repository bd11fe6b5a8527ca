/**
 * Knative Serving and Eventing objects, typed by hand after the v1 APIs (serving.knative.dev/v1,
 * eventing.knative.dev/v1, sources.knative.dev/v1) and built on cdk8s ApiObject, so the chart
 * needs no imported CRD code. Only the fields this project uses are modelled; k8s-tests checks the
 * synthesized objects against stricter schemas.
 */
import { ApiObject, type ApiObjectMetadata } from 'cdk8s';
import type { Construct } from 'constructs';
import type { Filter } from '@avatar-pipeline/kit/filters';

/** A reference to an Addressable (a Knative Service, a Broker) plus an optional path. */
export interface Destination {
  ref?: { apiVersion: string; kind: string; name: string; namespace?: string };
  uri?: string;
  /** The audience of the OIDC token Knative sends with each delivery (`authentication-oidc`). */
  audience?: string;
}

/** eventing.knative.dev/v1 DeliverySpec. */
export interface DeliverySpec {
  retry?: number;
  backoffPolicy?: 'linear' | 'exponential';
  /** ISO 8601 duration. */
  backoffDelay?: string;
  /** ISO 8601 duration, per attempt. */
  timeout?: string;
  deadLetterSink?: Destination;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } };
}

export interface Resources {
  requests: { cpu: string; memory: string };
  limits: { cpu?: string; memory: string };
}

/** The container security context fields Knative accepts. */
export interface SecurityContext {
  runAsNonRoot: boolean;
  runAsUser: number;
  runAsGroup: number;
  readOnlyRootFilesystem: boolean;
  allowPrivilegeEscalation: false;
  capabilities: { drop: ['ALL'] };
  seccompProfile: { type: 'RuntimeDefault' };
}

/** The container fields Knative accepts (its field mask); a single serving container. */
export interface KnativeContainer {
  name: string;
  image: string;
  imagePullPolicy?: string;
  ports: [{ name: 'http1' | 'h2c'; containerPort: number }];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string; optional?: boolean }; secretRef?: { name: string; optional?: boolean } }[];
  resources: Resources;
  /** Knative allows httpGet, tcpSocket, exec and grpc; the port may be left out (the serving port). */
  readinessProbe: KnativeProbe;
  livenessProbe: KnativeProbe;
  securityContext: SecurityContext;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}

export interface KnativeProbe {
  httpGet: { path: string; port?: number };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
  successThreshold?: number;
}

export interface KnativeServiceSpec {
  template: {
    metadata: { labels?: Record<string, string>; annotations: Record<string, string> };
    spec: {
      serviceAccountName: string;
      containerConcurrency: number;
      timeoutSeconds: number;
      enableServiceLinks: false;
      containers: [KnativeContainer];
      volumes?: { name: string; emptyDir: { medium?: 'Memory'; sizeLimit?: string } }[];
    };
  };
}

export interface BrokerSpec {
  /** The class's settings (a ConfigMap: the channel template, or the Kafka broker's bootstrap servers). */
  config?: { apiVersion: string; kind: string; name: string; namespace?: string };
  delivery?: DeliverySpec;
}

export interface TriggerSpec {
  broker: string;
  /** The kit's filter model is Knative's own (the subscriptions API dialects). */
  filters?: readonly Filter[];
  subscriber: Destination;
  delivery?: DeliverySpec;
}

export interface SinkBindingSpec {
  /** One object by name, or every object of the kind whose labels match (a CronJob's Jobs). */
  subject: { apiVersion: string; kind: string } & ({ name: string } | { selector: { matchLabels: Record<string, string> } });
  sink: Destination;
}

type Props<S> = { metadata: ApiObjectMetadata & { name: string }; spec: S };

export const KSERVICE = { apiVersion: 'serving.knative.dev/v1', kind: 'Service' } as const;
export const BROKER = { apiVersion: 'eventing.knative.dev/v1', kind: 'Broker' } as const;

export class KnativeService extends ApiObject {
  constructor(scope: Construct, id: string, props: Props<KnativeServiceSpec>) {
    super(scope, id, { ...KSERVICE, ...props });
  }
}

export class Broker extends ApiObject {
  constructor(scope: Construct, id: string, props: Props<BrokerSpec>) {
    super(scope, id, { ...BROKER, ...props });
  }
}

export class Trigger extends ApiObject {
  constructor(scope: Construct, id: string, props: Props<TriggerSpec>) {
    super(scope, id, { apiVersion: 'eventing.knative.dev/v1', kind: 'Trigger', ...props });
  }
}

export class SinkBinding extends ApiObject {
  constructor(scope: Construct, id: string, props: Props<SinkBindingSpec>) {
    super(scope, id, { apiVersion: 'sources.knative.dev/v1', kind: 'SinkBinding', ...props });
  }
}

/** A reference to a Knative Service, with a path on it and the audience of the tokens sent there. */
export function serviceDestination(name: string, path: string, audience: string): Destination {
  return { ref: { ...KSERVICE, name }, uri: path, audience };
}
