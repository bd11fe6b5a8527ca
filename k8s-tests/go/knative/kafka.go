package main

// What eventing-kafka-broker (Knative 1.21: its knative-v1.21.0 release, tag v0.48.0, commit
// 938a67d035588fbe2c928ab38db00fffc7226f09, built on the same knative.dev/eventing v0.48.0 and
// knative.dev/pkg as this command) decides about a Broker of class Kafka or KafkaNamespaced
// before any Kafka cluster is contacted. The module knative.dev/eventing-kafka-broker is not
// served by the Go module proxy, so these functions are ported from its source (Apache-2.0,
// Copyright The Knative Authors), each naming the function it follows; their messages are its own.
// Its webhook handles no other kind that the charts use: Triggers of a Kafka Broker and the
// ConfigMap are checked by nothing else at admission.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	"knative.dev/pkg/apis"
	"knative.dev/pkg/configmap"
	"knative.dev/pkg/webhook/resourcesemantics"
)

// control-plane/pkg/kafka/broker_class.go and topic.go.
const (
	kafkaBrokerClass           = "Kafka"
	kafkaNamespacedBrokerClass = "KafkaNamespaced"

	defaultTopicNumPartitionConfigMapKey      = "default.topic.partitions"
	defaultTopicReplicationFactorConfigMapKey = "default.topic.replication.factor"
	bootstrapServersConfigMapKey              = "bootstrap.servers"
)

func isKafkaBroker(b *eventingv1.Broker) bool {
	class := b.Annotations[eventingv1.BrokerClassAnnotationKey]
	return class == kafkaBrokerClass || class == kafkaNamespacedBrokerClass
}

// kafkaBrokerWebhook is BrokerStub.Validate (control-plane/pkg/apis/eventing/v1/broker_validation.go),
// which the validating webhook validation.webhook.kafka.eventing.knative.dev runs on every Broker
// (control-plane/cmd/webhook-kafka/main.go); its SetDefaults does nothing. BrokerStub has the
// Broker's own fields, decoded the same strict way, so the defaulted Broker stands for it.
func kafkaBrokerWebhook(_ context.Context, obj resourcesemantics.GenericCRD) *apis.FieldError {
	b := obj.(*eventingv1.Broker)
	if !isKafkaBroker(b) {
		// validation for the broker of other classes is done by the other webhooks
		return nil
	}
	if b.Spec.Config == nil {
		// validation of the Config requiredness is done by the upstream webhook
		return nil
	}
	// we specifically expect our broker class to use ConfigMap as the config type
	if strings.ToLower(b.Spec.Config.Kind) != "configmap" {
		return apis.ErrInvalidValue(b.Spec.Config.Kind, "kind", "Expected ConfigMap").ViaField("config").ViaField("spec")
	}
	// for the namespaced broker, we expect the config to be in the same namespace as the broker
	if b.Annotations[eventingv1.BrokerClassAnnotationKey] != kafkaNamespacedBrokerClass {
		return nil
	}
	if b.Spec.Config.Namespace != "" && b.Spec.Config.Namespace != b.Namespace {
		return apis.ErrInvalidValue(b.Spec.Config.Namespace, "namespace", "Expected ConfigMap in same namespace with broker resource").
			ViaField("config").
			ViaField("spec")
	}
	return nil
}

// A configMap of the input, or why it is not one the API server would store.
type configMap struct {
	cm  *corev1.ConfigMap
	err error
}

// collectConfigMaps adds the ConfigMaps of a YAML stream, by namespace/name; those that name no
// namespace are in the given one.
func collectConfigMaps(input []byte, namespace string, into map[string]configMap) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(input)))
	for {
		chunk, err := reader.Read()
		if err != nil { // io.EOF, or a stream that check reports as broken
			return
		}
		raw, err := yaml.YAMLToJSON(chunk)
		if err != nil {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct{ Name, Namespace string }
		}
		if json.Unmarshal(raw, &head) != nil || head.APIVersion != "v1" || head.Kind != "ConfigMap" {
			continue
		}
		if head.Metadata.Namespace == "" {
			head.Metadata.Namespace = namespace
		}
		cm := &corev1.ConfigMap{}
		err = json.Unmarshal(raw, cm)
		cm.Namespace = head.Metadata.Namespace
		into[head.Metadata.Namespace+"/"+head.Metadata.Name] = configMap{cm, err}
	}
}

// kafkaBrokerConfig is what eventing-kafka-broker's Broker controller makes of an admitted
// Broker's spec.config before it contacts Kafka (Reconciler.reconcileKind, brokerConfigMap and
// topicConfig in control-plane/pkg/reconciler/broker/broker.go): the message it would set on the
// Broker's ConfigParsed condition (empty if none). A ConfigMap missing from the input is one the
// controller cannot find. The Secret that auth.secret.ref.name names is not looked at.
func kafkaBrokerConfig(b *eventingv1.Broker, configMaps map[string]configMap) string {
	if !isKafkaBroker(b) {
		return ""
	}
	if b.Spec.Config == nil {
		// The controller would dereference it; the defaulting webhook sets it from config-br-defaults.
		return "spec.config is not set: no ConfigMap to read the Kafka topic configuration from"
	}
	if b.Annotations[eventingv1.BrokerClassAnnotationKey] == kafkaNamespacedBrokerClass && b.Spec.Config.Namespace != "" && b.Spec.Config.Namespace != b.Namespace {
		// NamespacedReconciler.ReconcileKind (namespaced_broker.go); its webhook already refuses this.
		return fmt.Sprintf("broker with %q class need the config in the same namespace with the broker. broker.spec.config.namespace=%q, broker.namespace=%q",
			kafkaNamespacedBrokerClass, b.Spec.Config.Namespace, b.Namespace)
	}
	// brokerConfigMap
	if strings.ToLower(b.Spec.Config.Kind) != "configmap" {
		return fmt.Sprintf("supported config Kind: ConfigMap - got %s", b.Spec.Config.Kind)
	}
	namespace := b.Spec.Config.Namespace
	if namespace == "" {
		namespace = b.Namespace
	}
	found, ok := configMaps[namespace+"/"+b.Spec.Config.Name]
	if ok && found.err != nil {
		return fmt.Sprintf("configmap %s/%s is not a valid ConfigMap: %v", namespace, b.Spec.Config.Name, found.err)
	}
	// topicConfig: a ConfigMap that is not found is rebuilt from the Broker's status annotations,
	// none on a new Broker.
	var data map[string]string
	if ok {
		data = found.cm.Data
	}
	if err := topicConfigFromConfigMap(namespace, b.Spec.Config.Name, data); err != nil {
		if len(data) == 0 {
			return fmt.Sprintf("unable to rebuild topic config, failed to get configmap %s/%s", namespace, b.Spec.Config.Name)
		}
		return fmt.Sprintf("unable to build topic config from configmap: %v - ConfigMap data: %v", err, data)
	}
	return ""
}

// topicConfigFromConfigMap is TopicConfigFromConfigMap with buildTopicConfigFromConfigMap and
// validateTopicConfig (control-plane/pkg/kafka/topic.go), less the topic settings it only carries.
func topicConfigFromConfigMap(namespace, name string, data map[string]string) error {
	var numPartitions, replicationFactor int32
	var bootstrapServers string
	err := configmap.Parse(data,
		configmap.AsInt32(defaultTopicNumPartitionConfigMapKey, &numPartitions),
		configmap.AsInt32(defaultTopicReplicationFactorConfigMapKey, &replicationFactor),
		configmap.AsString(bootstrapServersConfigMapKey, &bootstrapServers),
	)
	if err != nil {
		return fmt.Errorf("failed to parse config map %s/%s: %w", namespace, name, err)
	}
	servers := bootstrapServersArray(bootstrapServers)
	// TopicDetail.ReplicationFactor is an int16.
	if numPartitions <= 0 || int16(replicationFactor) <= 0 || len(servers) == 0 {
		return fmt.Errorf("error validating topic config from configmap %w - ConfigMap data: %v",
			fmt.Errorf("invalid configuration - numPartitions: %d - replicationFactor: %d - bootstrapServers: %s", numPartitions, int16(replicationFactor), servers),
			data)
	}
	return nil
}

// bootstrapServersArray is BootstrapServersArray (control-plane/pkg/kafka/topic.go): the
// comma-separated servers, trimmed, empty ones dropped.
func bootstrapServersArray(bootstrapServers string) []string {
	bss := strings.Split(bootstrapServers, ",")
	j := len(bss)
	for i := 0; i < j; i++ {
		bss[i] = strings.TrimSpace(bss[i])
		if bss[i] == "" {
			j--
			bss[i] = bss[j]
			i--
		}
	}
	return bss[:j]
}
