"""The model registry is the Kubernetes API: a model version is a succeeded TrainingRun, the champion
the one labelled `mlops.dev/promoted=true` among those labelled `mlops.dev/model=<name>`."""

MODEL_LABEL = "mlops.dev/model"
PROMOTED_LABEL = "mlops.dev/promoted"
APPROVED_ANNOTATION = "mlops.dev/approved"
# A version a ModelDeployment rolled back: the label makes `-l mlops.dev/rolled-back=true` the query, the
# annotation (same key) carries the record as JSON ({modelDeployment, reason, message, at}).
ROLLED_BACK_LABEL = "mlops.dev/rolled-back"
ROLLED_BACK_ANNOTATION = "mlops.dev/rolled-back"
# When `kubectl mlops retry` cleared the mark: a rollback recorded before it no longer holds the version.
RETRIED_ANNOTATION = "mlops.dev/retried-at"
