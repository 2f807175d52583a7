"""Every name the operator shares with the cluster and its users, in one home: the kinds (plural, short
name), and the keys of the labels and annotations it writes or reads. Other modules import these; none
spells a key itself."""

from __future__ import annotations

from dataclasses import dataclass

from . import GROUP


@dataclass(frozen=True)
class Kind:
    """One of our kinds as the API server and kubectl name it."""

    kind: str
    plural: str
    short_name: str

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def resource(self) -> str:
        """`modeldeployments.mlops.dev`: how kubectl and RBAC name the resource."""
        return f"{self.plural}.{GROUP}"

    @property
    def names(self) -> tuple[str, str, str]:
        """What a user may write before the slash: md/iris, modeldeployment/iris, modeldeployments/iris."""
        return (self.short_name, self.singular, self.plural)


DATASET = Kind("Dataset", "datasets", "dset")  # "ds" is DaemonSet's: kubectl would never reach us
TRAINING_RUN = Kind("TrainingRun", "trainingruns", "tr")
MODEL_DEPLOYMENT = Kind("ModelDeployment", "modeldeployments", "md")
KINDS = (DATASET, TRAINING_RUN, MODEL_DEPLOYMENT)

# ------------------------------------------------------------------------- labels the operator writes
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "mlops-operator"  # the value: every child the operator creates carries it (its watches select it)
NAME_LABEL = "app.kubernetes.io/name"
SERVER_NAME = "mlops-server"  # NAME_LABEL of every model server pod
DATASET_LABEL = "mlops.dev/dataset"  # a check Job: its Dataset
TRAINING_RUN_LABEL = "mlops.dev/training-run"  # a training Job: its TrainingRun
DEPLOYMENT_LABEL = "mlops.dev/deployment"  # a server pod, Deployment or Service: its ModelDeployment
VARIANT_LABEL = "mlops.dev/variant"  # stable | canary
VERSION_LABEL = "mlops.dev/version"  # the model version a server pod runs
MODEL_LABEL = "mlops.dev/model"  # a TrainingRun (a model version) and a server pod: the model
PROMOTED_LABEL = "mlops.dev/promoted"  # "true" on the champion among a model's TrainingRuns
# A version a ModelDeployment rolled back: the label makes `-l mlops.dev/rolled-back=true` the query, the
# annotation (same key) carries the record as JSON ({modelDeployment, reason, message, at}).
ROLLED_BACK_LABEL = "mlops.dev/rolled-back"
RETRAINING_LABEL = "mlops.dev/retraining-for"  # a TrainingRun a ModelDeployment's trigger created
REPRODUCES_LABEL = "mlops.dev/reproduces"  # a TrainingRun `kubectl mlops reproduce` created: the run it repeats

# ---------------------------------------------------------------------------------------- annotations
ROLLED_BACK_ANNOTATION = "mlops.dev/rolled-back"
RETRIED_ANNOTATION = "mlops.dev/retried-at"  # when `kubectl mlops retry` cleared a rollback mark
APPROVED_ANNOTATION = "mlops.dev/approved"  # `kubectl mlops approve` on a TrainingRun held for approval
APPROVE_INPUTS_ANNOTATION = "mlops.dev/approve-inputs"  # the version whose changed inputs are approved
COMMAND_ANNOTATIONS = {"promote": "mlops.dev/promote", "abort": "mlops.dev/abort", "resume": "mlops.dev/resume"}
TRIGGER_ANNOTATION = "mlops.dev/retraining-trigger"  # the evidence a retraining run was created on
# A moment (api.clock format) asking a Dataset to read its source again now: set by a retraining trigger
# that fired, so that the run it creates trains on data that includes what fired it.
REFRESH_ANNOTATION = "mlops.dev/refresh-requested"
STORE_ANNOTATION = "mlops.dev/artifact-store"  # a Namespace's own artifact store
DESIRED_ANNOTATION = "mlops.dev/desired"  # fingerprint of the body the operator last applied to a child
# On a server Deployment: the fingerprint of its pod template, of the ModelDeployment's spec that shaped it
# (spec.server, spec.capture), and — while the servers roll onto a template only the operator changed (an
# upgrade) — the template they roll to (resources/serving.py, "Upgrade rolls").
SERVER_TEMPLATE_ANNOTATION = "mlops.dev/server-template"
SERVER_INPUTS_ANNOTATION = "mlops.dev/server-inputs"
UPGRADE_ROLL_ANNOTATION = "mlops.dev/upgrade-roll"

# The environment of the pods the operator starts: the image it started them with (a trainer records it).
IMAGE_ENV = "MLOPS_IMAGE"

# ------------------------------------------------------------------------------ keys others define
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
JOB_CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
