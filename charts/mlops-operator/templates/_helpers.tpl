{{/* Names, labels and the pieces several templates share. */}}

{{- define "mlops-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the release name when it already contains the chart's name. */}}
{{- define "mlops-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mlops-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlops-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mlops-operator.labels" -}}
{{ include "mlops-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "mlops-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mlops-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image of the operator, of its Jobs and of its model servers. */}}
{{- define "mlops-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}

{{/* With ha.enabled the replica holding the Lease of this name (in the release's namespace) leads. */}}
{{- define "mlops-operator.leaseName" -}}{{ include "mlops-operator.fullname" . }}-leader{{- end -}}

{{- define "mlops-operator.replicas" -}}
{{- if .Values.ha.enabled -}}
{{- max 2 .Values.replicas -}}
{{- else if gt (int .Values.replicas) 1 -}}
{{- fail "replicas > 1 needs ha.enabled=true: without leader election every replica would handle every object" -}}
{{- else -}}
{{- .Values.replicas -}}
{{- end -}}
{{- end -}}

{{/*
Where the operator pods run relative to each other: the given constraints (counting the chart's pods when
they select none themselves); with ha.enabled and neither constraints nor an affinity given, a soft
spread over nodes, as two replicas on one node fail together. pod-template-hash: in a rolling update the
new pods spread among themselves, not around the old ones about to go.
*/}}
{{- define "mlops-operator.topologySpreadConstraints" -}}
{{- $selector := dict "labelSelector" (dict "matchLabels" (include "mlops-operator.selectorLabels" . | fromYaml)) -}}
{{- range .Values.topologySpreadConstraints }}
{{- $constraint := . }}
{{- if not (hasKey . "labelSelector") }}{{ $constraint = merge (deepCopy .) $selector }}{{ end }}
- {{ toYaml $constraint | nindent 2 | trim }}
{{- else }}
{{- if and .Values.ha.enabled (not .Values.affinity) }}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  matchLabelKeys:
    - pod-template-hash
  labelSelector:
    matchLabels:
      {{- include "mlops-operator.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
What the operator does in a namespace it watches, and nothing more (docs/operations.md says why
each rule is needed). kopf patches the watched objects for its finalizer and bookkeeping annotations
and their status for its progress; children are server-side applied (create + patch). Children,
Jobs' pods, artifact claims and HTTPRoutes are listed and watched: the reconcilers read from those
watches instead of polling.
*/}}
{{- define "mlops-operator.namespacedRules" -}}
- apiGroups: [mlops.dev]
  resources: [datasets, trainingruns, modeldeployments]
  verbs: [get, list, watch, patch]
# Continuous training (ModelDeployment spec.retraining, mode Auto) creates TrainingRuns from its template.
- apiGroups: [mlops.dev]
  resources: [trainingruns]
  verbs: [create]
- apiGroups: [mlops.dev]
  resources: [datasets/status, trainingruns/status, modeldeployments/status]
  verbs: [get, patch]
# Jobs: created, watched, and once their result is recorded given a ttlSecondsAfterFinished (patch).
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
# The key each ModelDeployment's servers sign feedback receipts with: created (generateName, owned by the
# ModelDeployment) and never read, updated or listed — the operator reads no Secret.
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/* kopf lists and watches CustomResourceDefinitions (cluster-scoped) to find the resources it serves. */}}
{{- define "mlops-operator.clusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
# Namespaces: their `mlops.dev/artifact-store` annotation names a store of their own (watched); with
# watchNamespaces, kopf also follows which of them exist.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
{{- end -}}

