// Command luahealth assesses the health of one Kubernetes object with Argo CD's own Lua engine (its util/lua
// package, the code the application controller runs), and prints the result as one JSON line:
//
//	{"status": "Healthy", "message": "..."}
//
// Usage (build.sh installs it as argocd-lua-health-<Argo CD version>):
//
//	argocd-lua-health [--open-libs] SCRIPT.lua [OBJECT]
//	argocd-lua-health --argocd-cm ARGOCD-CM.yaml [OBJECT]
//
// OBJECT is a JSON or YAML file holding one object; "-" or no argument reads it from stdin. Integers in it
// reach Lua as numbers, as in the controller (which decodes live objects from the API server's JSON).
//
// With SCRIPT, the script runs as the controller runs a resource.customizations health script:
// lua.VM.ExecuteHealthLua, without the Lua standard libraries unless --open-libs (the customization's
// useOpenLibs). With --argocd-cm, the script is the one Argo CD picks for the object's group and kind from
// that argocd-cm ConfigMap (parsed by Argo CD's settings manager), and the health is the controller's
// assessment (gitops-engine's health.GetResourceHealth): a deleting object is Progressing, kinds without a
// customization get Argo CD's built-in checks.
//
// Exit status: 0 the result is printed; 1 a usage or input error; 2 the script failed (a Lua error, or it
// returned neither a table nor nil): "script error: ..." on stderr; 3 no health: the script returned nil,
// or nothing assesses this kind.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/argoproj/argo-cd/gitops-engine/v3/pkg/health"
	log "github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
)

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(code)
}

// readObject decodes one object from a JSON or YAML file ("-": stdin) as the controller holds live objects.
func readObject(path string) *unstructured.Unstructured {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		fail(1, "reading the object: %v", err)
	}
	raw, err := yaml.YAMLToJSON(data)
	if err != nil {
		fail(1, "the object is neither JSON nor YAML: %v", err)
	}
	object := map[string]any{}
	// k8s.io's json turns integers into int64 and other numbers into float64, as for objects from the API.
	if err := utiljson.Unmarshal(raw, &object); err != nil {
		fail(1, "the object is not a JSON/YAML mapping: %v", err)
	}
	return &unstructured.Unstructured{Object: object}
}

// overridesFrom reads the resource overrides from an argocd-cm ConfigMap file with Argo CD's settings manager.
func overridesFrom(path string) lua.ResourceHealthOverrides {
	data, err := os.ReadFile(path)
	if err != nil {
		fail(1, "reading %s: %v", path, err)
	}
	cm := &corev1.ConfigMap{}
	if err := yaml.Unmarshal(data, cm); err != nil {
		fail(1, "%s is not a ConfigMap: %v", path, err)
	}
	// The settings manager reads argocd-cm (labelled part-of argocd) from its namespace through informers.
	cm.Name, cm.Namespace = common.ArgoCDConfigMapName, "argocd"
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels["app.kubernetes.io/part-of"] = "argocd"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	overrides, err := settings.NewSettingsManager(ctx, fake.NewClientset(cm), "argocd").GetResourceOverrides()
	if err != nil {
		fail(1, "the resource customizations of %s: %v", path, err)
	}
	return overrides
}

func main() {
	log.SetLevel(log.WarnLevel) // the settings manager's informers log at info level
	openLibs := flag.Bool("open-libs", false, "give the script the Lua standard libraries (useOpenLibs)")
	argocdCM := flag.String("argocd-cm", "", "take the script from this argocd-cm ConfigMap, as the controller does")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: argocd-lua-health [--open-libs] SCRIPT.lua [OBJECT|-]\n"+
			"       argocd-lua-health --argocd-cm ARGOCD-CM.yaml [OBJECT|-]")
		flag.PrintDefaults()
	}
	flag.Parse()
	args := flag.Args()
	want := 1
	if *argocdCM != "" {
		want = 0
	}
	if len(args) < want || len(args) > want+1 {
		flag.Usage()
		os.Exit(1)
	}
	objectPath := "-"
	if len(args) > want {
		objectPath = args[want]
	}

	var result *health.HealthStatus
	if *argocdCM != "" {
		overrides := overridesFrom(*argocdCM)
		obj := readObject(objectPath)
		hs, err := health.GetResourceHealth(obj, overrides)
		if err != nil {
			fail(2, "script error: %v", err)
		}
		result = hs
	} else {
		script, err := os.ReadFile(args[0])
		if err != nil {
			fail(1, "reading the script: %v", err)
		}
		obj := readObject(objectPath)
		hs, err := lua.VM{UseOpenLibs: *openLibs}.ExecuteHealthLua(obj, string(script))
		if err != nil {
			fail(2, "script error: %v", err)
		}
		result = hs
	}
	if result == nil {
		fail(3, "no health: the script returned nil, or nothing assesses this kind")
	}
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	_ = out.Encode(struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	}{string(result.Status), result.Message})
}
