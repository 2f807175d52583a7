"""The only modules that talk to the outside: the Kubernetes API, Prometheus, the artifact store."""
