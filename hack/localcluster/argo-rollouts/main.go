// Command argo-rollouts runs the Argo Rollouts controller on the host, out of cluster, for
// bench/rollout_timing.py, where it is the peer our ModelDeployment rollouts are timed against.
//
// Argo Rollouts' own command (cmd/rollouts-controller) is a main package, so it cannot be imported:
// this one builds the same controller the same way. One controller.Manager with every controller
// (rollouts, experiments, analysis runs, services, ingresses, notifications), on the same informers
// (ReplicaSets limited to those carrying rollouts-pod-template-hash, analysis Jobs limited to those of
// an AnalysisRun, the ClusterAnalysisTemplate informer cluster-wide, the notification ConfigMap and
// Secret in the controller's namespace), with Argo Rollouts' defaults for everything it does not
// expose: worker counts, QPS and burst, ingress classes and the traffic routers' API versions.
// Left out: the analysis-only mode (--controllers), pprof, and the cloud providers' kubeconfig auth
// plugins, none of which the local cluster uses.
//
// The flags it keeps are spelled as upstream's: --kubeconfig and kubectl's overrides (--namespace, ...),
// --namespaced (watch only the namespace of the kubeconfig, or --namespace), --leader-elect and its
// lease options, --metricsPort, --healthzPort, --rollout-resync, --instance-id, --loglevel,
// --logformat, --kloglevel, --qps, --burst and --version.
package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/argoproj/pkg/kubeclientmetrics"
	smiclientset "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/split/clientset/versioned"
	log "github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/argoproj/argo-rollouts/controller"
	"github.com/argoproj/argo-rollouts/controller/metrics"
	"github.com/argoproj/argo-rollouts/metricproviders"
	jobprovider "github.com/argoproj/argo-rollouts/metricproviders/job"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	clientset "github.com/argoproj/argo-rollouts/pkg/client/clientset/versioned"
	"github.com/argoproj/argo-rollouts/pkg/signals"
	"github.com/argoproj/argo-rollouts/rollout"
	controllerutil "github.com/argoproj/argo-rollouts/utils/controller"
	"github.com/argoproj/argo-rollouts/utils/defaults"
	ingressutil "github.com/argoproj/argo-rollouts/utils/ingress"
	istioutil "github.com/argoproj/argo-rollouts/utils/istio"
	logutil "github.com/argoproj/argo-rollouts/utils/log"
	"github.com/argoproj/argo-rollouts/utils/record"
	"github.com/argoproj/argo-rollouts/utils/tolerantinformer"
	"github.com/argoproj/argo-rollouts/utils/version"
)

type options struct {
	namespaced   bool
	resync       time.Duration
	metricsPort  int
	healthzPort  int
	instanceID   string
	logLevel     string
	logFormat    string
	klogLevel    int
	qps          float32
	burst        int
	printVersion bool
	election     *controller.LeaderElectionOptions
}

func main() {
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	o := options{election: controller.NewLeaderElectionOptions()}
	var resyncSeconds int64
	command := &cobra.Command{
		Use:           "argo-rollouts",
		Short:         "The Argo Rollouts controller (rollouts, analysis runs, experiments), out of cluster",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	loading := clientcmd.NewDefaultClientConfigLoadingRules()
	loading.DefaultClientConfig = &clientcmd.DefaultClientConfig
	overrides := clientcmd.ConfigOverrides{}
	flags := command.Flags()
	command.PersistentFlags().StringVar(&loading.ExplicitPath, "kubeconfig", "", "Path to a kube config. Only required if out-of-cluster")
	clientcmd.BindOverrideFlags(&overrides, command.PersistentFlags(), clientcmd.RecommendedConfigOverrideFlags(""))
	clientConfig := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, &overrides)

	flags.BoolVar(&o.namespaced, "namespaced", false, "Watch only the namespace of the kubeconfig (or --namespace): no cluster RBAC needed")
	flags.Int64Var(&resyncSeconds, "rollout-resync", controller.DefaultRolloutResyncPeriod, "Seconds between two resyncs of every object")
	flags.IntVar(&o.metricsPort, "metricsPort", controller.DefaultMetricsPort, "Port of the metrics endpoint (all addresses)")
	flags.IntVar(&o.healthzPort, "healthzPort", controller.DefaultHealthzPort, "Port of the /healthz endpoint (all addresses)")
	flags.StringVar(&o.instanceID, "instance-id", "", "Operate only on the objects labelled with this instance ID")
	flags.StringVar(&o.logLevel, "loglevel", "info", "Logging level: debug, info, warn or error")
	flags.StringVar(&o.logFormat, "logformat", "", "Logging format: text or json")
	flags.IntVar(&o.klogLevel, "kloglevel", 0, "Verbosity of the Kubernetes client libraries' logging (klog)")
	flags.Float32Var(&o.qps, "qps", defaults.DefaultQPS, "Maximum queries per second to the Kubernetes API server")
	flags.IntVar(&o.burst, "burst", defaults.DefaultBurst, "Maximum burst of queries to the Kubernetes API server")
	flags.BoolVar(&o.printVersion, "version", false, "Print the version and exit")
	flags.BoolVar(&o.election.LeaderElect, "leader-elect", controller.DefaultLeaderElect, "Elect a leader among the instances (a Lease in the namespace of POD_NAMESPACE)")
	flags.DurationVar(&o.election.LeaderElectionLeaseDuration, "leader-election-lease-duration", controller.DefaultLeaderElectionLeaseDuration, "How long a lease lasts without renewal")
	flags.DurationVar(&o.election.LeaderElectionRenewDeadline, "leader-election-renew-deadline", controller.DefaultLeaderElectionRenewDeadline, "How long the leader retries renewing before it gives up")
	flags.DurationVar(&o.election.LeaderElectionRetryPeriod, "leader-election-retry-period", controller.DefaultLeaderElectionRetryPeriod, "Time between two attempts to acquire or renew the lease")

	command.RunE = func(*cobra.Command, []string) error {
		if o.printVersion {
			fmt.Println(version.GetVersion())
			return nil
		}
		o.resync = time.Duration(resyncSeconds) * time.Second
		return run(clientConfig, o)
	}
	return command
}

func run(clientConfig clientcmd.ClientConfig, o options) error {
	level, err := log.ParseLevel(o.logLevel)
	if err != nil {
		return err
	}
	log.SetLevel(level)
	logger := log.New()
	switch strings.ToLower(o.logFormat) {
	case "":
	case "json":
		log.SetFormatter(&log.JSONFormatter{})
		logger.SetFormatter(&log.JSONFormatter{})
	case "text":
		log.SetFormatter(&log.TextFormatter{FullTimestamp: true})
		logger.SetFormatter(&log.TextFormatter{FullTimestamp: true})
	default:
		return fmt.Errorf("--logformat %q: text or json", o.logFormat)
	}
	logutil.SetKLogLogger(logger)
	logutil.SetKLogLevel(o.klogLevel)
	ctx := signals.SetupSignalHandlerContext()

	config, err := clientConfig.ClientConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	config.QPS, config.Burst = o.qps, o.burst
	namespace := metav1.NamespaceAll
	if o.namespaced {
		if namespace, _, err = clientConfig.Namespace(); err != nil {
			return fmt.Errorf("namespace: %w", err)
		}
	}
	log.WithFields(log.Fields{"version": version.GetVersion(), "namespace": namespace, "instanceID": o.instanceID,
		"metricsPort": o.metricsPort, "healthzPort": o.healthzPort}).Info("Argo Rollouts controller starting")

	requests := &metrics.K8sRequestsCountProvider{}
	kubeclientmetrics.AddMetricsTransportWrapper(config, requests.IncKubernetesRequest)
	kubeClient, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	argoprojClient, err := clientset.NewForConfig(config)
	if err != nil {
		return err
	}
	dynamicClient, err := dynamic.NewForConfig(config)
	if err != nil {
		return err
	}
	discoveryClient, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		return err
	}
	smiClient, err := smiclientset.NewForConfig(config)
	if err != nil {
		return err
	}

	withLabel := func(selector string) kubeinformers.SharedInformerOption {
		return kubeinformers.WithTweakListOptions(func(options *metav1.ListOptions) { options.LabelSelector = selector })
	}
	kubeInformers := kubeinformers.NewSharedInformerFactoryWithOptions(kubeClient, o.resync, kubeinformers.WithNamespace(namespace))
	// Only the ReplicaSets of Rollouts, not those of every Deployment.
	replicaSetInformers := kubeinformers.NewSharedInformerFactoryWithOptions(kubeClient, o.resync,
		kubeinformers.WithNamespace(namespace), withLabel(v1alpha1.DefaultRolloutUniqueLabelKey))
	jobKubeClient, _, err := metricproviders.GetAnalysisJobClientset(kubeClient)
	if err != nil {
		return err
	}
	jobNamespace := metricproviders.GetAnalysisJobNamespace()
	if jobNamespace == "" {
		jobNamespace = namespace
	}
	jobInformers := kubeinformers.NewSharedInformerFactoryWithOptions(jobKubeClient, o.resync,
		kubeinformers.WithNamespace(jobNamespace), withLabel(jobprovider.AnalysisRunUIDLabelKey))
	instanceID := controllerutil.InstanceIDRequirement(o.instanceID)
	instanceSelector := instanceID.String()
	byInstance := func(options *metav1.ListOptions) { options.LabelSelector = instanceSelector }
	// Rollouts, AnalysisRuns, AnalysisTemplates and Experiments in the namespace; ClusterAnalysisTemplates
	// (cluster-scoped) need a factory of their own, which the manager starts only when not namespaced.
	dynamicInformers := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dynamicClient, o.resync, namespace, byInstance)
	clusterDynamicInformers := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dynamicClient, o.resync, metav1.NamespaceAll, byInstance)
	_, istioClient := istioutil.GetPrimaryClusterDynamicClient(kubeClient, namespace)
	if istioClient == nil {
		istioClient = dynamicClient
	}
	istioInformers := dynamicinformer.NewFilteredDynamicSharedInformerFactory(istioClient, o.resync, namespace, nil)
	byName := func(kind, name string) kubeinformers.SharedInformerOption {
		return kubeinformers.WithTweakListOptions(func(options *metav1.ListOptions) {
			options.Kind = kind
			options.FieldSelector = "metadata.name=" + name
		})
	}
	notificationNamespace := kubeinformers.WithNamespace(defaults.Namespace())
	notificationSecrets := kubeinformers.NewSharedInformerFactoryWithOptions(kubeClient, o.resync, notificationNamespace,
		byName("Secret", record.NotificationSecret))
	notificationConfigMaps := kubeinformers.NewSharedInformerFactoryWithOptions(kubeClient, o.resync, notificationNamespace,
		byName("ConfigMap", record.NotificationConfigMap))
	mode, err := ingressutil.DetermineIngressMode("", kubeClient.DiscoveryClient)
	if err != nil {
		return err
	}
	ingresses, err := ingressutil.NewIngressWrapper(mode, kubeClient, kubeInformers)
	if err != nil {
		return err
	}

	manager := controller.NewManager(
		namespace, kubeClient, argoprojClient, dynamicClient, smiClient, discoveryClient,
		replicaSetInformers.Apps().V1().ReplicaSets(),
		kubeInformers.Core().V1().Services(),
		ingresses,
		jobInformers.Batch().V1().Jobs(),
		jobInformers.Core().V1().Pods(),
		tolerantinformer.NewTolerantRolloutInformer(dynamicInformers),
		tolerantinformer.NewTolerantExperimentInformer(dynamicInformers),
		tolerantinformer.NewTolerantAnalysisRunInformer(dynamicInformers),
		tolerantinformer.NewTolerantAnalysisTemplateInformer(dynamicInformers),
		tolerantinformer.NewTolerantClusterAnalysisTemplateInformer(clusterDynamicInformers),
		istioClient,
		istioInformers.ForResource(istioutil.GetIstioVirtualServiceGVR()).Informer(),
		istioInformers.ForResource(istioutil.GetIstioDestinationRuleGVR()).Informer(),
		notificationConfigMaps, notificationSecrets,
		o.resync, o.instanceID, o.metricsPort, o.healthzPort, requests,
		[]string{"nginx"}, []string{"alb"}, // upstream's default --nginx-ingress-classes, --alb-ingress-classes
		dynamicInformers, clusterDynamicInformers, istioInformers,
		o.namespaced, kubeInformers, replicaSetInformers, jobInformers,
		rollout.DefaultEphemeralMetadataThreads, rollout.DefaultEphemeralMetadataPodRetries,
		false, // notifications configured in the controller's namespace only (no --self-service-notification-enabled)
	)
	return manager.Run(ctx, controller.DefaultRolloutThreads, controller.DefaultServiceThreads,
		controller.DefaultIngressThreads, controller.DefaultExperimentThreads, controller.DefaultAnalysisThreads, o.election)
}
