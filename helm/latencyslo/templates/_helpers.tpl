{{/* Chart name, truncated to the 63 characters Kubernetes allows in a label value. */}}
{{- define "latencyslo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object-name prefix: the release name, plus the chart name unless it already holds it. */}}
{{- define "latencyslo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "latencyslo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "latencyslo.labels" -}}
helm.sh/chart: {{ include "latencyslo.chart" . }}
app.kubernetes.io/name: {{ include "latencyslo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: latencyslo
{{- end -}}

{{- define "latencyslo.operator.fullname" -}}
{{- printf "%s-operator" (include "latencyslo.fullname" .) -}}
{{- end -}}

{{- define "latencyslo.operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "latencyslo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "latencyslo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "latencyslo.operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "latencyslo.operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.operator.image.tag -}}
{{- if hasPrefix "@" $tag -}}
{{- printf "%s%s" .Values.operator.image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .Values.operator.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "latencyslo.demo.image" -}}
{{- $tag := default .Chart.AppVersion .Values.demo.image.tag -}}
{{- if hasPrefix "@" $tag -}}
{{- printf "%s%s" .Values.demo.image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .Values.demo.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The demo worker Deployment's name; its runtime ConfigMap is "<this>-latencyslo". */}}
{{- define "latencyslo.demo.fullname" -}}
{{- printf "%s-demo-worker" (include "latencyslo.fullname" .) -}}
{{- end -}}

{{- define "latencyslo.demo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "latencyslo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: inference-worker
{{- end -}}

{{/* The namespaces the operator acts in: the watched ones, or none (cluster mode). */}}
{{- define "latencyslo.clusterMode" -}}
{{- if eq (len .Values.operator.watchNamespaces) 0 -}}true{{- end -}}
{{- end -}}

{{/*
Pod and container security contexts: the Pod Security "restricted" profile, with a
read-only root filesystem. Both images run as uid/gid 10001.
*/}}
{{- define "latencyslo.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "latencyslo.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Fail early, with the value's name, on combinations the schema cannot express. */}}
{{- define "latencyslo.validate" -}}
{{- $slo := .Values.demo.latencySLO -}}
{{- if and .Values.demo.enabled $slo.enabled -}}
{{- if gt (int $slo.minReplicas) (int $slo.maxReplicas) -}}
{{- fail (printf "demo.latencySLO.minReplicas (%v) must be <= demo.latencySLO.maxReplicas (%v)" $slo.minReplicas $slo.maxReplicas) -}}
{{- end -}}
{{- if gt (int $slo.maxReplicas) (int .Values.operator.maxReplicas) -}}
{{- fail (printf "demo.latencySLO.maxReplicas (%v) must be <= operator.maxReplicas (%v), the operator's hard cap" $slo.maxReplicas .Values.operator.maxReplicas) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.demo.enabled (le (int .Values.demo.terminationGracePeriodSeconds) (add .Values.demo.preStopDelaySeconds .Values.demo.drainDelaySeconds)) -}}
{{- fail (printf "demo.terminationGracePeriodSeconds (%v) must exceed demo.preStopDelaySeconds + demo.drainDelaySeconds (%v): the worker needs time left to drain" .Values.demo.terminationGracePeriodSeconds (add .Values.demo.preStopDelaySeconds .Values.demo.drainDelaySeconds)) -}}
{{- end -}}
{{- if and .Values.demo.enabled (not (include "latencyslo.clusterMode" .)) (not (has .Release.Namespace .Values.operator.watchNamespaces)) -}}
{{- fail (printf "demo.enabled installs the demo into the release namespace %q, which operator.watchNamespaces %v does not list" .Release.Namespace .Values.operator.watchNamespaces) -}}
{{- end -}}
{{- end -}}

{{/*
Seconds between two scrapes of the workers, as the operator's ranges assume them: the value
given, else the PodMonitor's interval when the chart creates it (whole seconds), else 15.
*/}}
{{- define "latencyslo.scrapeSeconds" -}}
{{- $pm := .Values.monitoring.podMonitor -}}
{{- if not (kindIs "invalid" .Values.operator.scrapeIntervalSeconds) -}}
{{- .Values.operator.scrapeIntervalSeconds -}}
{{- else if and $pm.enabled (regexMatch "^[1-9][0-9]*s$" ($pm.interval | toString)) -}}
{{- trimSuffix "s" $pm.interval -}}
{{- else -}}
15
{{- end -}}
{{- end -}}
