"""kopf handlers, one module per kind; importing this package registers them all."""

from . import dataset, modeldeployment, settings, trainingrun, watches  # noqa: F401
