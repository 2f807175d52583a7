// Command argocd runs the two Argo CD components the local cluster needs on the host, the application
// controller and the repo server, from one binary: the role is the name it is started by (build.sh links
// argocd-application-controller and argocd-repo-server to it), as Argo CD's own multi-call binary does.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	appcontroller "github.com/argoproj/argo-cd/v3/cmd/argocd-application-controller/commands"
	reposerver "github.com/argoproj/argo-cd/v3/cmd/argocd-repo-server/commands"
	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/util/log"
)

var roles = map[string]func() *cobra.Command{
	common.CommandApplicationController: appcontroller.NewCommand,
	common.CommandRepoServer:            reposerver.NewCommand,
}

func main() {
	// As Argo CD's cmd/main.go: klog through Argo CD's logger. Its main also calls util/grpc.DisableSRVLookups,
	// which turns off the SRV lookups grpc's grpclb balancer turns on, and panics when they are not on: grpclb
	// is not linked into these two roles, so they are off already, and that call must not be made here.
	klog.SetLogger(log.NewLogrusLogger(log.NewWithCurrentConfig()))

	role := filepath.Base(os.Args[0])
	if name := os.Getenv("ARGOCD_BINARY_NAME"); name != "" {
		role = name
	}
	newCommand, ok := roles[role]
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: start this binary as %s or %s (a link named so, or ARGOCD_BINARY_NAME)\n",
			role, common.CommandApplicationController, common.CommandRepoServer)
		os.Exit(2)
	}
	if err := newCommand().Execute(); err != nil {
		os.Exit(1)
	}
}
