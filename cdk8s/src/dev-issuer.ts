/**
 * Optional (devIssuer.enabled, kind): the dev token issuer (local/src/stand-ins/issuer.ts) as a small always-on Deployment, so a
 * cluster user can get a player token (`POST /dev/token` through the gateway) and the services a
 * JWKS. Not a Knative Service: its signing key lives in memory, and scaling to zero would rotate
 * it (services refetch the JWKS on an unknown key, but tokens minted before would stop working).
 * EKS uses the configured external issuer (Cognito) instead.
 */
import { ApiObject, Duration, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import { labels, restrictedContainerSecurity, restrictedPodSecurity } from './common.js';
import { DEV_ISSUER } from './gateway.js';
import { Conditional, setField, type ConditionalProps } from './helm.js';
import { builtImage, settings } from './values.js';

const PORT = 8080;

/** The dev issuer's switch (devIssuer.enabled); it signs for auth.issuer and auth.audience. */
export type DevIssuerProps = ConditionalProps;

/** The issuer's Deployment and its Service (the gateway's /dev and /.well-known routes lead there). */
export class DevIssuer extends Conditional {
  constructor(scope: Construct, id: string, props: DevIssuerProps) {
    super(scope, id, props.when);
    const deployment = new kplus.Deployment(this, 'dev-issuer', {
      metadata: { name: DEV_ISSUER, labels: labels(DEV_ISSUER, 'identity') },
      podMetadata: { labels: labels(DEV_ISSUER, 'identity') },
      replicas: 1,
      automountServiceAccountToken: false,
      securityContext: restrictedPodSecurity(),
      containers: [
        {
          name: DEV_ISSUER,
          image: builtImage(DEV_ISSUER),
          ports: [{ number: PORT, name: 'http' }],
          envVariables: {
            PORT: kplus.EnvValue.fromValue(String(PORT)),
            LOG_LEVEL: kplus.EnvValue.fromValue(settings.logLevel),
            DEV_ISSUER: kplus.EnvValue.fromValue(settings.auth.issuer),
            DEV_AUDIENCE: kplus.EnvValue.fromValue(settings.auth.audience),
          },
          securityContext: restrictedContainerSecurity(),
          resources: {
            cpu: { request: kplus.Cpu.millis(20), limit: kplus.Cpu.millis(500) },
            memory: { request: Size.mebibytes(64), limit: Size.mebibytes(192) },
          },
          readiness: kplus.Probe.fromHttpGet('/readyz', { port: PORT, periodSeconds: Duration.seconds(10) }),
          liveness: kplus.Probe.fromHttpGet('/healthz', { port: PORT, periodSeconds: Duration.seconds(20) }),
          volumeMounts: [{ path: '/tmp', volume: kplus.Volume.fromEmptyDir(this, 'dev-issuer-tmp', 'tmp', { sizeLimit: Size.mebibytes(16) }) }],
        },
      ],
    });
    setField(ApiObject.of(deployment), '/spec/template/spec/containers/0/imagePullPolicy', settings.imagePullPolicy);
    deployment.exposeViaService({ name: DEV_ISSUER, ports: [{ port: 80, targetPort: PORT, name: 'http' }] });
  }
}
