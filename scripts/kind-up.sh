#!/usr/bin/env bash
# One-command cluster for `skaffold run`: a kind cluster with what docs/deploy.md's
# prerequisites list, in that order: Knative Serving with Kourier as its ingress, Knative Eventing
# with the in-memory channel and the MT channel-based broker (the chart's broker class on kind),
# Eventing's `authentication-oidc` feature, and kube-prometheus-stack (release
# `kube-prometheus-stack` in `monitoring`). Each step waits until its Deployments are Available.
#
# Idempotent: on an existing cluster it skips the creation and applies every step again.
#
#   scripts/kind-up.sh               then `skaffold run`
#   WITH_KAFKA=1 scripts/kind-up.sh  also Knative's Kafka broker and a single-node Kafka (KRaft)
#   WITH_KEDA=1 scripts/kind-up.sh   also KEDA
#
# Settings, from the environment (defaults at the top of this script):
#   KIND_CLUSTER_NAME  avatar-pipeline (kubectl context kind-<name>)
#   KIND_NODE_IMAGE    the kind node image (Kubernetes >= 1.33)
#   KNATIVE_VERSION    Knative Serving and Eventing release (knative-v1.21.0)
#   KOURIER_VERSION, KNATIVE_KAFKA_VERSION   net-kourier and eventing-kafka-broker (as Knative's)
#   KUBE_PROMETHEUS_STACK_VERSION, KEDA_VERSION   helm chart versions
#   KAFKA_IMAGE        the Kafka of WITH_KAFKA=1
#   WAIT_TIMEOUT       how long each wait may take (10m)
# The Knative release is the one k8s-tests validates the charts against
# (k8s-tests/support/go-tools.ts) and the node image has the Kubernetes minor of their kube-apiserver.
set -euo pipefail

KIND_CLUSTER_NAME="${KIND_CLUSTER_NAME:-avatar-pipeline}"
# kind v0.30.0's image for Kubernetes 1.34 (Knative 1.21 needs 1.33 or newer); needs kind >= 0.30.
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a}"
KNATIVE_VERSION="${KNATIVE_VERSION:-knative-v1.21.0}"
KOURIER_VERSION="${KOURIER_VERSION:-$KNATIVE_VERSION}"
KNATIVE_KAFKA_VERSION="${KNATIVE_KAFKA_VERSION:-$KNATIVE_VERSION}"
# Bundles Prometheus Operator v0.88.1 (k8s-tests installs the v0.88.0 CRDs).
KUBE_PROMETHEUS_STACK_VERSION="${KUBE_PROMETHEUS_STACK_VERSION:-81.6.9}"
KAFKA_IMAGE="${KAFKA_IMAGE:-apache/kafka:4.1.0}"
KEDA_VERSION="${KEDA_VERSION:-2.20.2}"
WITH_KAFKA="${WITH_KAFKA:-0}"
WITH_KEDA="${WITH_KEDA:-0}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-10m}"

SERVING_URL="https://github.com/knative/serving/releases/download/$KNATIVE_VERSION"
KOURIER_URL="https://github.com/knative/net-kourier/releases/download/$KOURIER_VERSION"
EVENTING_URL="https://github.com/knative/eventing/releases/download/$KNATIVE_VERSION"
KAFKA_BROKER_URL="https://github.com/knative-extensions/eventing-kafka-broker/releases/download/$KNATIVE_KAFKA_VERSION"
CONTEXT="kind-$KIND_CLUSTER_NAME"

usage() {
  sed -n '2,/^set -euo pipefail$/s/^# \{0,1\}//p' "$0"
}

die() {
  echo "kind-up: $*" >&2
  exit 1
}

step() {
  echo "==> $*"
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  '') ;;
  *) usage >&2; die "unknown argument: $1" ;;
esac
for flag in WITH_KAFKA WITH_KEDA; do
  case "${!flag}" in
    0 | 1) ;;
    *) die "$flag must be 0 or 1, not '${!flag}'" ;;
  esac
done

missing=""
for tool in kind kubectl helm; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  die "missing on PATH:$missing. Install kind >= 0.30 (https://kind.sigs.k8s.io/docs/user/quick-start/#installation), kubectl (https://kubernetes.io/docs/tasks/tools/) and helm >= 3.18 (https://helm.sh/docs/intro/install/); kind also needs Docker (or Podman) running."
fi

kc() {
  kubectl --context "$CONTEXT" "$@"
}

hm() {
  helm --kube-context "$CONTEXT" "$@"
}

# Applies a release manifest and waits until the CRDs it defines are Established (serving-core
# already holds custom resources of serving-crds' kinds).
apply() {
  local names crds
  step "kubectl apply -f $1"
  names="$(kc apply -f "$1" -o name)"
  crds="$(printf '%s\n' "$names" | grep '^customresourcedefinition' || true)"
  if [ -n "$crds" ]; then
    # One name per word: the names hold no spaces.
    # shellcheck disable=SC2086
    kc wait --for=condition=Established --timeout="$WAIT_TIMEOUT" $crds >/dev/null
  fi
}

# Waits until every Deployment of each namespace is Available.
available() {
  local namespace
  for namespace in "$@"; do
    step "waiting for the Deployments in $namespace"
    kc wait --for=condition=Available --timeout="$WAIT_TIMEOUT" deployment --all -n "$namespace"
  done
}

# The cluster.
clusters="$(kind get clusters 2>/dev/null || true)"
if grep -qxF "$KIND_CLUSTER_NAME" <<<"$clusters"; then
  step "kind cluster $KIND_CLUSTER_NAME exists: not creating it, applying everything again"
  kind export kubeconfig --name "$KIND_CLUSTER_NAME"
else
  step "kind create cluster --name $KIND_CLUSTER_NAME ($KIND_NODE_IMAGE)"
  kind create cluster --name "$KIND_CLUSTER_NAME" --image "$KIND_NODE_IMAGE" --wait "$WAIT_TIMEOUT"
fi

# Knative Serving, Kourier as its ingress.
apply "$SERVING_URL/serving-crds.yaml"
apply "$SERVING_URL/serving-core.yaml"
available knative-serving
apply "$KOURIER_URL/kourier.yaml"
available kourier-system knative-serving
kc patch configmap/config-network -n knative-serving --type merge \
  -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'

# Knative Eventing, the in-memory channel and the MT channel-based broker (the chart's class on kind).
apply "$EVENTING_URL/eventing-crds.yaml"
apply "$EVENTING_URL/eventing-core.yaml"
available knative-eventing
apply "$EVENTING_URL/in-memory-channel.yaml"
available knative-eventing
apply "$EVENTING_URL/mt-channel-broker.yaml"
available knative-eventing
# OIDC tokens on every delivery: the event endpoints refuse events without one.
kc patch configmap/config-features -n knative-eventing --type merge \
  -p '{"data":{"authentication-oidc":"enabled"}}'

# Optional: Knative's Kafka broker (class `Kafka`) on a single-node Kafka in namespace kafka.
if [ "$WITH_KAFKA" = 1 ]; then
  step "Kafka ($KAFKA_IMAGE, KRaft, one node, no persistence) in namespace kafka"
  kc create namespace kafka --dry-run=client -o yaml | kc apply -f -
  # enableServiceLinks: false, or the Service `kafka` would put KAFKA_PORT & co. into the
  # environment, which the image turns into broker settings.
  kc apply -n kafka -f - <<EOF
apiVersion: v1
kind: Service
metadata:
  name: kafka
spec:
  selector: { app: kafka }
  ports: [{ name: broker, port: 9092 }]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: kafka
spec:
  replicas: 1
  strategy: { type: Recreate }
  selector: { matchLabels: { app: kafka } }
  template:
    metadata: { labels: { app: kafka } }
    spec:
      enableServiceLinks: false
      containers:
        - name: kafka
          image: $KAFKA_IMAGE
          ports: [{ name: broker, containerPort: 9092 }]
          env:
            - { name: CLUSTER_ID, value: YXZhdGFyLXBpcGVsaW5lIQ }   # base64url of 16 bytes, as KRaft wants
            - { name: KAFKA_NODE_ID, value: "1" }
            - { name: KAFKA_PROCESS_ROLES, value: "broker,controller" }
            - { name: KAFKA_LISTENERS, value: "PLAINTEXT://:9092,CONTROLLER://:9093" }
            - { name: KAFKA_ADVERTISED_LISTENERS, value: "PLAINTEXT://kafka.kafka.svc.cluster.local:9092" }
            - { name: KAFKA_CONTROLLER_LISTENER_NAMES, value: CONTROLLER }
            - { name: KAFKA_LISTENER_SECURITY_PROTOCOL_MAP, value: "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT" }
            - { name: KAFKA_CONTROLLER_QUORUM_VOTERS, value: "1@localhost:9093" }
            - { name: KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR, value: "1" }
            - { name: KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR, value: "1" }
            - { name: KAFKA_TRANSACTION_STATE_LOG_MIN_ISR, value: "1" }
            - { name: KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR, value: "1" }
            - { name: KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR, value: "1" }
            - { name: KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS, value: "0" }
            - { name: KAFKA_LOG_DIRS, value: /var/lib/kafka/data }
            - { name: KAFKA_HEAP_OPTS, value: "-Xms256m -Xmx512m" }
          readinessProbe:
            tcpSocket: { port: 9092 }
            periodSeconds: 5
          resources:
            requests: { cpu: 100m, memory: 768Mi }
            limits: { memory: 1Gi }
          volumeMounts: [{ name: data, mountPath: /var/lib/kafka/data }]
      volumes: [{ name: data, emptyDir: {} }]
EOF
  available kafka

  apply "$KAFKA_BROKER_URL/eventing-kafka-controller.yaml"
  available knative-eventing
  apply "$KAFKA_BROKER_URL/eventing-kafka-broker.yaml"
  available knative-eventing
  # The default config a Kafka-class Broker names: this Kafka, and one replica (one node).
  kc patch configmap/kafka-broker-config -n knative-eventing --type merge \
    -p '{"data":{"bootstrap.servers":"kafka.kafka.svc.cluster.local:9092","default.topic.replication.factor":"1"}}'
fi

# Prometheus Operator and Grafana: PodMonitors and PrometheusRules labelled
# `release: kube-prometheus-stack` from every namespace, dashboards from ConfigMaps labelled
# `grafana_dashboard: "1"` in every namespace.
step "helm upgrade --install kube-prometheus-stack $KUBE_PROMETHEUS_STACK_VERSION (namespace monitoring)"
helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update >/dev/null
hm upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack \
  --version "$KUBE_PROMETHEUS_STACK_VERSION" -n monitoring --create-namespace -f - <<'EOF'
prometheus:
  prometheusSpec:
    podMonitorSelector: { matchLabels: { release: kube-prometheus-stack } }
    podMonitorNamespaceSelector: {}
    ruleSelector: { matchLabels: { release: kube-prometheus-stack } }
    ruleNamespaceSelector: {}
grafana:
  sidecar:
    dashboards:
      enabled: true
      label: grafana_dashboard
      labelValue: "1"
      searchNamespace: ALL
EOF
available monitoring
step "waiting for Prometheus"
kc wait --for=condition=Available --timeout="$WAIT_TIMEOUT" prometheus --all -n monitoring

# Optional: KEDA.
if [ "$WITH_KEDA" = 1 ]; then
  step "helm upgrade --install keda $KEDA_VERSION (namespace keda)"
  helm repo add kedacore https://kedacore.github.io/charts --force-update >/dev/null
  hm upgrade --install keda kedacore/keda --version "$KEDA_VERSION" -n keda --create-namespace
  available keda
fi

kubectl config use-context "$CONTEXT" >/dev/null
echo
echo "kind cluster $KIND_CLUSTER_NAME is ready (kubectl context $CONTEXT)."
if [ "$WITH_KAFKA" = 1 ]; then
  echo "Kafka: kafka.kafka.svc.cluster.local:9092. For the chart's broker.class: Kafka, give broker.config"
  echo "  bootstrap.servers: kafka.kafka.svc.cluster.local:9092 and default.topic.replication.factor: \"1\"."
fi
echo "Next: skaffold run    (or skaffold run --port-forward: the gateway on http://localhost:8080)"
