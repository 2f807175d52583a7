"""The trainer: what runs inside a TrainingRun's Job (`mlops-operator train`)."""
