// Command coredns is CoreDNS with only the plugins the local cluster's DNS uses: the kubernetes plugin for
// cluster.local, forward and cache for everything else, and the health, readiness and metrics endpoints.
// CoreDNS's own main links every plugin in its plugin.cfg, cloud SDKs included (route53, azure, clouddns);
// this one, as CoreDNS documents for custom builds, imports coremain and the chosen plugins alone.
package main

import (
	"fmt"
	"os"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// The directives of the plugins imported above (prometheus is plugin/metrics's).
var plugins = []string{
	"bind", "cache", "errors", "forward", "health", "kubernetes", "loadbalance", "log", "loop", "prometheus",
	"ready", "reload",
}

func main() {
	// Directives is the order in which a query passes the plugins: taken from CoreDNS's own list (its
	// plugin.cfg order) rather than written here, so that it stays CoreDNS's across versions. A Corefile
	// naming a plugin not built in is refused at startup.
	wanted := map[string]bool{}
	for _, name := range plugins {
		wanted[name] = true
	}
	var directives []string
	for _, name := range dnsserver.Directives {
		if wanted[name] {
			directives = append(directives, name)
			delete(wanted, name)
		}
	}
	if len(wanted) > 0 {
		fmt.Fprintf(os.Stderr, "coredns: not directives of this CoreDNS version: %v\n", wanted)
		os.Exit(2)
	}
	if err := dnsserver.SetDirectives(directives); err != nil {
		fmt.Fprintf(os.Stderr, "coredns: %v\n", err)
		os.Exit(2)
	}
	coremain.Run()
}
