"""Every word the operator writes for a machine to read: condition types, reasons, phases, decisions.

They are StrEnums, so a member is its CamelCase string: it compares equal to what is read back from
the API, serialises as plain text, and a misspelt name fails at import instead of becoming a new
reason nobody matches on. Values are part of the API (Argo CD health scripts, `kubectl wait`,
alerts match on them): renaming a member is free, changing a value is a breaking change.
"""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    """The `type` of a condition (metav1.Condition)."""

    READY = "Ready"  # every kind: the aggregate a person or `kubectl wait` looks at
    VALIDATED = "Validated"  # Dataset: the current source content passed the schema
    SUCCEEDED = "Succeeded"  # TrainingRun: the Job finished and results were recorded
    PROMOTED = "Promoted"  # TrainingRun: this run is the champion of its model name
    AVAILABLE = "Available"  # ModelDeployment: the stable version serves
    PROGRESSING = "Progressing"  # ModelDeployment: a rollout is under way
    DEGRADED = "Degraded"  # ModelDeployment: a version was rolled back
    # ModelDeployment: a version is served on other libraries than it was trained with (its servers
    # replayed its golden rows: predicted the same, or they would not be ready).
    ENVIRONMENT_DIFFERS = "EnvironmentDiffers"


class ConditionStatus(StrEnum):
    """The `status` of a condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Reason(StrEnum):
    """Why a condition (or a phase, or a check) is what it is."""

    # Shared by all kinds.
    INVALID_SPEC = "InvalidSpec"
    # A child's name is held by an object that is not this object's child (resources.ownership).
    NAME_CONFLICT = "NameConflict"
    RECONCILING = "Reconciling"
    RECONCILE_ERROR = "ReconcileError"
    ARTIFACT_STORE_MISSING = "ArtifactStoreMissing"
    # A Job could not use the artifact store (storage.StoreError.reason says which).
    ARTIFACT_STORE_UNREACHABLE = "ArtifactStoreUnreachable"
    ARTIFACT_STORE_ACCESS_DENIED = "ArtifactStoreAccessDenied"
    ARTIFACT_STORE_BUCKET_MISSING = "ArtifactStoreBucketMissing"
    ARTIFACT_MISSING = "ArtifactMissing"
    ARTIFACT_STORE_UNAVAILABLE = "ArtifactStoreUnavailable"
    POD_CANNOT_START = "PodCannotStart"  # a Job's pod: a missing Secret or ConfigMap, an image not pulled
    # A Job's result (its termination message) is not the JSON envelope resources/results.py defines,
    # or did not fit the message's 4 KiB even without its optional parts.
    RESULT_UNREADABLE = "ResultUnreadable"
    RESULT_TOO_LARGE = "ResultTooLarge"

    # Dataset.
    VALIDATION_PENDING = "ValidationPending"
    VALIDATION_SUCCEEDED = "ValidationSucceeded"
    SOURCE_UNAVAILABLE = "SourceUnavailable"
    # A source inside the artifact store under another namespace's artifacts (resources.store).
    SOURCE_REFUSED = "SourceRefused"
    SCHEMA_VIOLATION = "SchemaViolation"
    CHECKSUM_MISMATCH = "ChecksumMismatch"

    # TrainingRun.
    DATASET_NOT_READY = "DatasetNotReady"
    JOB_CREATED = "JobCreated"
    JOB_RUNNING = "JobRunning"
    JOB_SUCCEEDED = "JobSucceeded"
    JOB_FAILED = "JobFailed"
    UNATTRIBUTED_RESULT = "UnattributedResult"  # a Job's result names a model this run did not write
    DEADLINE_EXCEEDED = "DeadlineExceeded"

    # ModelDeployment: conditions.
    MODEL_NOT_FOUND = "ModelNotFound"
    ROLLOUT_PENDING = "RolloutPending"
    SERVING_STABLE = "ServingStable"
    STABLE_NOT_READY = "StableNotReady"
    CANARY_IN_PROGRESS = "CanaryInProgress"
    ROLLOUT_IN_PROGRESS = "RolloutInProgress"
    ROLLOUT_COMPLETE = "RolloutComplete"
    NO_ROLLBACK = "NoRollback"
    ENVIRONMENT_DIFFERS = "EnvironmentDiffers"
    SAME_ENVIRONMENT = "SameEnvironment"  # EnvironmentDiffers=False: served on the libraries that trained it
    # ModelDeployment: why a canary was rolled back (status.degraded.reason).
    ABORTED = "Aborted"
    ANALYSIS_FAILED = "AnalysisFailed"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    MODEL_NOT_REPRODUCIBLE = "ModelNotReproducible"  # past the deadline, its servers refused it: see the replay
    POST_PROMOTION_ANALYSIS_FAILED = "PostPromotionAnalysisFailed"
    # ModelDeployment: why a rollout holds (status.pauseReason).
    PAUSE_STEP = "PauseStep"
    INCONCLUSIVE_ANALYSIS = "InconclusiveAnalysis"
    SPEC_PAUSED = "SpecPaused"
    TARGET_MISSING = "TargetMissing"  # the canary's version left the registry: it holds, still measured
    INPUT_SCHEMA_CHANGED = "InputSchemaChanged"  # the canary takes other inputs: no traffic until approved


class EventReason(StrEnum):
    """The `reason` of Events (`kubectl describe`) that are not a condition reason."""

    CHECK_STARTED = "CheckStarted"
    UPGRADE_STALLED = "UpgradeStalled"  # a ModelDeployment's servers did not become ready on a new template
    NEW_VERSION = "NewVersion"
    DATASET_PINNED = "DatasetPinned"
    TRAINING_SUCCEEDED = "TrainingSucceeded"
    PROMOTED = "Promoted"
    PROMOTION_REJECTED = "PromotionRejected"
    ROLLED_BACK = "RolledBack"  # a version rolled back: on its TrainingRun, and on the ModelDeployment
    CHAMPION_RESTORED = "ChampionRestored"  # the title went back to the last good version
    DEPLOYED = "Deployed"  # a ModelDeployment serves its first version
    CANARY_STARTED = "CanaryStarted"
    CANARY_REPLACED = "CanaryReplaced"  # a newer target replaced the canary mid-rollout
    STEP_COMPLETED = "StepCompleted"
    INPUT_SCHEMA_APPROVED = "InputSchemaApproved"
    RETRAINING_STARTED = "RetrainingStarted"
    RETRAINING_SUGGESTED = "RetrainingSuggested"  # a trigger fired under policy Suggest: nothing created


class Verdict(StrEnum):
    """The verdict of one metric, and of a measurement of all of them (rollout.analysis)."""

    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"  # no data yet, or a metric that could not be judged


class DatasetPhase(StrEnum):
    """`status.phase` of a Dataset (printer columns only: decisions read the conditions)."""

    PENDING = "Pending"
    READY = "Ready"
    FAILED = "Failed"


class TrainingPhase(StrEnum):
    """`status.phase` of a TrainingRun; Succeeded and Failed are terminal."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self in (TrainingPhase.SUCCEEDED, TrainingPhase.FAILED)


class DeploymentPhase(StrEnum):
    """`status.phase` of a ModelDeployment."""

    PENDING = "Pending"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    FAILED = "Failed"  # an invalid spec


class Decision(StrEnum):
    """A TrainingRun's promotion decision (status.promotion.decision)."""

    PROMOTED = "Promoted"
    REJECTED = "Rejected"
    PENDING_APPROVAL = "PendingApproval"
    SUPERSEDED = "Superseded"  # was Promoted; another version of the model took the title over
    ROLLED_BACK = "RolledBack"  # was Promoted; a ModelDeployment rolled it back: never the champion until retried


class PromotionReason(StrEnum):
    """Why a promotion was decided as it was (status.promotion.reason, the Promoted condition's reason)."""

    GATES_PASSED = "GatesPassed"
    GATE_FAILED = "GateFailed"
    MISSING_METRIC = "MissingMetric"
    NOT_BETTER = "NotBetterThanChampion"
    AWAITING_APPROVAL = "AwaitingApproval"
    APPROVED = "Approved"
    SUPERSEDED = "Superseded"
    ROLLED_BACK = "RolledBack"
    REINSTATED = "Reinstated"  # the champion again: the version promoted after it was rolled back
    NOT_COMPARABLE = "NotComparable"  # no figure of the champion on the candidate's rows: no comparison


STORE_REASONS = {
    "Unreachable": Reason.ARTIFACT_STORE_UNREACHABLE,
    "AccessDenied": Reason.ARTIFACT_STORE_ACCESS_DENIED,
    "BucketMissing": Reason.ARTIFACT_STORE_BUCKET_MISSING,
    "ObjectMissing": Reason.ARTIFACT_MISSING,
}


def store_reason(cause: str) -> Reason:
    """The status reason for a storage.StoreError's `reason`."""
    return STORE_REASONS.get(cause, Reason.ARTIFACT_STORE_UNAVAILABLE)
