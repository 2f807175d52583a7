"""Pure desired-state builders: functions from typed inputs to the manifests of the children we own."""
