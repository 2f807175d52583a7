"""mlops-operator: datasets, training runs and canaried model deployments as Kubernetes resources."""

__version__ = "0.1.0"
