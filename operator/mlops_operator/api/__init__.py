"""The typed API of the mlops.dev group: pydantic models are the source of truth for the CRDs."""

GROUP = "mlops.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
