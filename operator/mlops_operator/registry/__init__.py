"""The model registry is the Kubernetes API: a model version is a succeeded TrainingRun, the champion
the one labelled `mlops.dev/promoted=true` among those labelled `mlops.dev/model=<name>`."""

MODEL_LABEL = "mlops.dev/model"
PROMOTED_LABEL = "mlops.dev/promoted"
APPROVED_ANNOTATION = "mlops.dev/approved"
