"""The model registry is the Kubernetes API: a model version is a succeeded TrainingRun, the champion
the one labelled `mlops.dev/promoted=true` among those labelled `mlops.dev/model=<name>`."""

from ..api.names import (  # noqa: F401 (the registry's keys, defined with every other in api.names)
    APPROVED_ANNOTATION,
    MODEL_LABEL,
    PROMOTED_LABEL,
    RETRIED_ANNOTATION,
    ROLLED_BACK_ANNOTATION,
    ROLLED_BACK_LABEL,
)
