// Command knative-validate runs Knative's own admission logic (Serving and Eventing 1.21, the modules
// in go.mod) over the Knative objects of multi-document YAML streams, offline: every object is
// decoded, defaulted and validated as the defaulting and validating webhooks do it on CREATE, with
// the ConfigMaps that the release installs. One JSON line per object on stdout; exit status 1 if
// any object is refused.
//
// Brokers of class Kafka (and KafkaNamespaced) also go through the validation of eventing-kafka-broker's
// webhook, and with -kafka-config their spec.config ConfigMap is read from the same input the way
// its controller reads it (see kafka.go: that module is not served by the module proxy, so the few
// functions involved are ported from its knative-v1.21.0 release). A Broker whose ConfigMap that
// controller could not use is reported in the field `config` of its line and also sets exit status 1.
//
//	knative-validate [-namespace ns] [-kafka-config] [-serving-dir dir] [-eventing-dir dir] file.yaml... (or - for stdin)
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	eventingconfig "knative.dev/eventing/pkg/apis/config"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	"knative.dev/eventing/pkg/apis/feature"
	flowsv1 "knative.dev/eventing/pkg/apis/flows/v1"
	channelconfig "knative.dev/eventing/pkg/apis/messaging/config"
	messagingv1 "knative.dev/eventing/pkg/apis/messaging/v1"
	pingconfig "knative.dev/eventing/pkg/apis/sources/config"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	sourcesv1alpha1 "knative.dev/eventing/pkg/apis/sources/v1alpha1"
	sourcesv1beta2 "knative.dev/eventing/pkg/apis/sources/v1beta2"
	"knative.dev/pkg/apis"
	"knative.dev/pkg/configmap"
	"knative.dev/pkg/logging"
	webhookjson "knative.dev/pkg/webhook/json"
	"knative.dev/pkg/webhook/resourcesemantics"
	servingconfig "knative.dev/serving/pkg/apis/config"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	servingv1beta1 "knative.dev/serving/pkg/apis/serving/v1beta1"
)

// A webhook is the part of one Knative webhook binary that matters offline: the context
// decorators its defaulting and validating admission controllers are built with.
type webhook struct {
	defaulting, validation func(context.Context) context.Context
}

// servingWebhook mirrors cmd/webhook of knative.dev/serving: one config store (config-defaults,
// config-features, config-autoscaler) in both controllers. Its callbacks only act on dry-run
// requests, which a plain apply is not.
func servingWebhook(w configmap.Watcher, log *zap.SugaredLogger) webhook {
	store := servingconfig.NewStore(log)
	store.WatchConfigs(w)
	return webhook{store.ToContext, store.ToContext}
}

// eventingWebhook mirrors cmd/webhook of knative.dev/eventing: broker defaults, channel defaults
// and feature flags for defaulting; validation also sees the PingSource defaults. (Its sinks
// config only carries a kube client for JobSink, which is not handled here.)
func eventingWebhook(w configmap.Watcher, log *zap.SugaredLogger) webhook {
	defaults, channels, pings, features := eventingconfig.NewStore(log), channelconfig.NewStore(log), pingconfig.NewStore(log), feature.NewStore(log)
	defaults.WatchConfigs(w)
	channels.WatchConfigs(w)
	pings.WatchConfigs(w)
	features.WatchConfigs(w)
	return webhook{
		defaulting: func(ctx context.Context) context.Context {
			return features.ToContext(channels.ToContext(defaults.ToContext(ctx)))
		},
		validation: func(ctx context.Context) context.Context {
			return features.ToContext(channels.ToContext(pings.ToContext(defaults.ToContext(ctx))))
		},
	}
}

type handler struct {
	webhook *webhook
	zygote  resourcesemantics.GenericCRD
	// also is another validating webhook's verdict on the same object (the Kafka broker's on
	// Brokers): the API server calls every matching webhook, and any of them can refuse.
	also func(context.Context, resourcesemantics.GenericCRD) *apis.FieldError
}

func kinds(serving, eventing *webhook) map[schema.GroupVersionKind]handler {
	s := func(z resourcesemantics.GenericCRD) handler { return handler{webhook: serving, zygote: z} }
	e := func(z resourcesemantics.GenericCRD) handler { return handler{webhook: eventing, zygote: z} }
	return map[schema.GroupVersionKind]handler{
		servingv1.SchemeGroupVersion.WithKind("Service"):            s(&servingv1.Service{}),
		servingv1.SchemeGroupVersion.WithKind("Configuration"):      s(&servingv1.Configuration{}),
		servingv1.SchemeGroupVersion.WithKind("Route"):              s(&servingv1.Route{}),
		servingv1beta1.SchemeGroupVersion.WithKind("DomainMapping"): s(&servingv1beta1.DomainMapping{}),

		eventingv1.SchemeGroupVersion.WithKind("Broker"):                 {webhook: eventing, zygote: &eventingv1.Broker{}, also: kafkaBrokerWebhook},
		eventingv1.SchemeGroupVersion.WithKind("Trigger"):                e(&eventingv1.Trigger{}),
		messagingv1.SchemeGroupVersion.WithKind("Channel"):               e(&messagingv1.Channel{}),
		messagingv1.SchemeGroupVersion.WithKind("Subscription"):          e(&messagingv1.Subscription{}),
		flowsv1.SchemeGroupVersion.WithKind("Parallel"):                  e(&flowsv1.Parallel{}),
		flowsv1.SchemeGroupVersion.WithKind("Sequence"):                  e(&flowsv1.Sequence{}),
		sourcesv1.SchemeGroupVersion.WithKind("SinkBinding"):             e(&sourcesv1.SinkBinding{}),
		sourcesv1.SchemeGroupVersion.WithKind("PingSource"):              e(&sourcesv1.PingSource{}),
		sourcesv1.SchemeGroupVersion.WithKind("ApiServerSource"):         e(&sourcesv1.ApiServerSource{}),
		sourcesv1.SchemeGroupVersion.WithKind("ContainerSource"):         e(&sourcesv1.ContainerSource{}),
		sourcesv1beta2.SchemeGroupVersion.WithKind("PingSource"):         e(&sourcesv1beta2.PingSource{}),
		sourcesv1alpha1.SchemeGroupVersion.WithKind("IntegrationSource"): e(&sourcesv1alpha1.IntegrationSource{}),
	}
}

type line struct {
	File       string   `json:"file"`
	Kind       string   `json:"kind"`
	APIVersion string   `json:"apiVersion"`
	Name       string   `json:"name"`
	Namespace  string   `json:"namespace"`
	Result     string   `json:"result"`
	Errors     string   `json:"errors"`
	Warnings   []string `json:"warnings,omitempty"`
	// Config is, with -kafka-config and for an admitted Broker of a Kafka class, why
	// eventing-kafka-broker's controller could not use its spec.config ConfigMap (the message of
	// the Broker's ConfigParsed condition); empty when it could.
	Config string `json:"config,omitempty"`
}

// admit returns Knative's error text (empty if admitted) and its warnings for one JSON object, and
// the object as the validating webhooks saw it (defaulted).
//
// Unknown fields are always refused (DisallowUnknownFields): Eventing's webhooks decode that way;
// Serving's pass false because its CRDs carry full schemas, so there the API server refuses them
// first (kubectl's default strict field validation), with its own wording.
func admit(h handler, raw []byte) (string, []string, resourcesemantics.GenericCRD) {
	// The defaulting (mutating) webhook runs first: decode, SetDefaults within a CREATE.
	obj := h.zygote.DeepCopyObject().(resourcesemantics.GenericCRD)
	if err := webhookjson.Decode(raw, obj, true); err != nil {
		return fmt.Sprintf("cannot decode incoming new object: %v", err), nil, nil
	}
	ctx := logging.WithLogger(context.Background(), logger)
	obj.SetDefaults(apis.WithinCreate(h.webhook.defaulting(ctx)))

	// The validating webhook then decodes the patched object afresh and validates it.
	patched, err := json.Marshal(obj)
	if err != nil {
		return err.Error(), nil, nil
	}
	obj = h.zygote.DeepCopyObject().(resourcesemantics.GenericCRD)
	if err := webhookjson.Decode(patched, obj, true); err != nil {
		return fmt.Sprintf("cannot decode incoming new object: %v", err), nil, nil
	}
	fe := obj.Validate(apis.WithinCreate(h.webhook.validation(ctx)))
	if h.also != nil {
		fe = fe.Also(h.also(apis.WithinCreate(ctx), obj))
	}
	var warnings []string
	for _, w := range fe.Filter(apis.WarningLevel).WrappedErrors() {
		warnings = append(warnings, w.Error())
	}
	if errs := fe.Filter(apis.ErrorLevel); errs != nil {
		return errs.Error(), warnings, obj
	}
	return "", warnings, obj
}

func isKnative(group string) bool {
	return group == "knative.dev" || strings.HasSuffix(group, ".knative.dev")
}

// check reports every object of one YAML stream; it returns false if any was refused (or, with
// configMaps, is a Kafka Broker whose ConfigMap cannot be used).
func check(file string, r io.Reader, handlers map[schema.GroupVersionKind]handler, namespace string, configMaps map[string]configMap, out *json.Encoder) bool {
	ok := true
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for doc := 1; ; doc++ {
		l := line{File: file}
		chunk, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return ok
		}
		var raw []byte
		if err == nil {
			raw, err = yaml.YAMLToJSONStrict(chunk)
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct{ Name, Namespace string }
		}
		if err == nil && string(raw) == "null" {
			continue // an empty document, e.g. a template rendered to nothing
		}
		if err == nil {
			err = json.Unmarshal(raw, &head)
		}
		if err == nil && (head.APIVersion == "" || head.Kind == "") {
			err = errors.New("apiVersion and kind are required")
		}
		l.APIVersion, l.Kind, l.Name, l.Namespace = head.APIVersion, head.Kind, head.Metadata.Name, head.Metadata.Namespace
		gv, gvErr := schema.ParseGroupVersion(head.APIVersion)
		switch {
		case err != nil:
			l.Result, l.Errors = "refused", fmt.Sprintf("document %d: %v", doc, err)
		case gvErr != nil:
			l.Result, l.Errors = "refused", gvErr.Error()
		case !isKnative(gv.Group):
			l.Result = "skipped"
		default:
			h, known := handlers[gv.WithKind(head.Kind)]
			if !known {
				// What the webhook answers for a kind it has no handler for.
				l.Result, l.Errors = "refused", fmt.Sprintf("unhandled kind: %v", gv.WithKind(head.Kind))
				break
			}
			if l.Namespace == "" {
				// The API server sets the request's namespace before admission (helm template output
				// often leaves it out).
				var obj map[string]any
				_ = json.Unmarshal(raw, &obj)
				if meta, isMap := obj["metadata"].(map[string]any); isMap {
					meta["namespace"], l.Namespace = namespace, namespace
					raw, _ = json.Marshal(obj)
				}
			}
			var admitted resourcesemantics.GenericCRD
			l.Errors, l.Warnings, admitted = admit(h, raw)
			l.Result = map[bool]string{true: "accepted", false: "refused"}[l.Errors == ""]
			if b, isBroker := admitted.(*eventingv1.Broker); isBroker && l.Errors == "" && configMaps != nil {
				l.Config = kafkaBrokerConfig(b, configMaps)
			}
		}
		ok = ok && l.Result != "refused" && l.Config == ""
		_ = out.Encode(l)
		if chunk == nil && err != nil {
			return false // the stream itself is broken: nothing further can be read
		}
	}
}

// moduleDir is where the module this binary was built with lives in the module cache, so the
// ConfigMaps loaded are those of the very release whose code runs.
func moduleDir(path string) string {
	info, _ := debug.ReadBuildInfo()
	for _, m := range info.Deps {
		if m.Path == path {
			if m.Replace != nil {
				m = m.Replace
			}
			return filepath.Join(moduleCache(), path+"@"+m.Version)
		}
	}
	return ""
}

var moduleCache = sync.OnceValue(func() string {
	if cache := os.Getenv("GOMODCACHE"); cache != "" {
		return cache
	}
	b, _ := exec.Command("go", "env", "GOMODCACHE").Output()
	return strings.TrimSpace(string(b))
})

// installedConfigMaps reads the ConfigMaps that a release installs (config/core/configmaps of its
// module), exactly as shipped: the `_example` blocks are documentation, and the constructors
// ignore keys starting with `_`, so unset keys take the release's defaults.
func installedConfigMaps(dir string) (configmap.Watcher, error) {
	files, err := filepath.Glob(filepath.Join(dir, "config", "core", "configmaps", "*.yaml"))
	if err == nil && len(files) == 0 {
		err = fmt.Errorf("no ConfigMaps in %s/config/core/configmaps (run go mod download in k8s-tests/go/knative)", dir)
	}
	var cms []*corev1.ConfigMap
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		cm := &corev1.ConfigMap{}
		if err := yaml.Unmarshal(b, cm); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		cms = append(cms, cm)
	}
	return configmap.NewStaticWatcher(cms...), err
}

var logger *zap.SugaredLogger

func main() {
	namespace := flag.String("namespace", "default", "namespace of objects that name none")
	servingDir := flag.String("serving-dir", moduleDir("knative.dev/serving"), "knative.dev/serving module directory")
	eventingDir := flag.String("eventing-dir", moduleDir("knative.dev/eventing"), "knative.dev/eventing module directory")
	kafkaConfig := flag.Bool("kafka-config", false, "read the spec.config ConfigMap of each Broker of a Kafka class from the input, as eventing-kafka-broker's controller does (field `config` of its line; exit status 1 if it cannot be used)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: knative-validate [flags] file.yaml... (- for stdin)")
		os.Exit(2)
	}
	// Knative logs to stderr only, and only what matters; stdout carries the JSON lines.
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	zl, err := zc.Build()
	if err != nil {
		fail(err)
	}
	logger = zl.Sugar()

	servingCMs, err := installedConfigMaps(*servingDir)
	if err != nil {
		fail(err)
	}
	eventingCMs, err := installedConfigMaps(*eventingDir)
	if err != nil {
		fail(err)
	}
	serving, eventing := servingWebhook(servingCMs, logger), eventingWebhook(eventingCMs, logger)
	handlers := kinds(&serving, &eventing)

	// Every input is read first: a Broker's ConfigMap may come in any file, before or after it.
	inputs := make([][]byte, flag.NArg())
	for i, file := range flag.Args() {
		var err error
		if file == "-" {
			inputs[i], err = io.ReadAll(os.Stdin)
		} else {
			inputs[i], err = os.ReadFile(file)
		}
		if err != nil {
			fail(err)
		}
	}
	var configMaps map[string]configMap
	if *kafkaConfig {
		configMaps = map[string]configMap{}
		for _, input := range inputs {
			collectConfigMaps(input, *namespace, configMaps)
		}
	}
	out, ok := json.NewEncoder(os.Stdout), true
	for i, file := range flag.Args() {
		ok = check(file, bytes.NewReader(inputs[i]), handlers, *namespace, configMaps, out) && ok
	}
	if !ok {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "knative-validate:", err)
	os.Exit(2)
}
