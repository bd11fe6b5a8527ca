/** Names, labels and the hardened security context every container of the chart shares. */
import * as kplus from 'cdk8s-plus-28';
import type { SecurityContext } from './knative.js';

export const PART_OF = 'avatar-pipeline';
/** The uid/gid the Dockerfile creates for the services. */
export const APP_UID = 10001;

export const SHARED_CONFIG = 'avatar-pipeline-env';
export const STAND_IN_CREDENTIALS = 'stand-in-credentials';
export const BROKER_NAME = 'avatar-pipeline';
/** Receives what the processing Triggers give up on; profile consumes it (durable with a durable broker class). */
export const DEAD_LETTER_BROKER = 'avatar-pipeline-dead-letter';

export function labels(name: string, component: string): Record<string, string> {
  return { 'app.kubernetes.io/name': name, 'app.kubernetes.io/component': component, 'app.kubernetes.io/part-of': PART_OF };
}

/** The restricted Pod Security Standard, as a plain (Knative-compatible) container security context. */
export function restrictedSecurityContext(uid = APP_UID): SecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: uid,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** The same for cdk8s-plus containers. */
export function restrictedContainerSecurity(uid = APP_UID): kplus.ContainerSecurityContextProps {
  return {
    ensureNonRoot: true,
    user: uid,
    group: uid,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    privileged: false,
    capabilities: { drop: [kplus.Capability.ALL] },
    seccompProfile: { type: kplus.SeccompProfileType.RUNTIME_DEFAULT },
  };
}

export function restrictedPodSecurity(uid = APP_UID): kplus.PodSecurityContextProps {
  return { ensureNonRoot: true, user: uid, group: uid, fsGroup: uid };
}
