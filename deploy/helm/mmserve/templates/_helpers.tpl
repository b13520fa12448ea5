{{/* Names and labels. */}}
{{- define "mmserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mmserve.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The headless Service: StatefulSet pods' DNS names, and the routers' replica list. */}}
{{- define "mmserve.headless" -}}
{{- printf "%s-headless" (include "mmserve.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "mmserve.router" -}}
{{- printf "%s-router" (include "mmserve.fullname" . | trunc 56 | trimSuffix "-") }}
{{- end }}

{{- define "mmserve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mmserve.labels" -}}
helm.sh/chart: {{ include "mmserve.chart" . }}
{{ include "mmserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "mmserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mmserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "mmserve.routerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "mmserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: router
{{- end }}

{{- define "mmserve.routerLabels" -}}
helm.sh/chart: {{ include "mmserve.chart" . }}
{{ include "mmserve.routerSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "mmserve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mmserve.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mmserve.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion (toString .Values.image.tag)) }}
{{- end }}

{{/* The Secret the server's environment comes from (credentials), if any. */}}
{{- define "mmserve.credentialsSecret" -}}
{{- if .Values.credentials.existingSecret }}
{{- .Values.credentials.existingSecret }}
{{- else if .Values.credentials.create }}
{{- printf "%s-credentials" (include "mmserve.fullname" .) }}
{{- end }}
{{- end }}

{{- define "mmserve.tenantsSecret" -}}
{{- if .Values.tenants.existingSecret }}
{{- .Values.tenants.existingSecret }}
{{- else }}
{{- printf "%s-tenants" (include "mmserve.fullname" .) }}
{{- end }}
{{- end }}

{{/* A StatefulSet when the model cache is persistent, or when the nginx router lists the
     replicas by their stable names. */}}
{{- define "mmserve.statefulset" -}}
{{- if or .Values.modelCache.persistent (and .Values.router.enabled (eq .Values.router.kind "nginx")) }}true{{ end }}
{{- end }}

{{/*
A Kubernetes quantity (4Gi, 512Mi, 1.5G, 1000000, 1e9 is not accepted) in bytes, as an
integer string. Fails with the quantity named when it cannot parse it.
*/}}
{{- define "mmserve.bytes" -}}
{{- $q := . -}}
{{- if kindIs "float64" $q }}{{ $q = printf "%.0f" $q }}{{ end -}}
{{- if kindIs "int64" $q }}{{ $q = printf "%d" $q }}{{ end -}}
{{- if kindIs "int" $q }}{{ $q = printf "%d" $q }}{{ end -}}
{{- $q = toString $q | trim -}}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$" $q) -}}
{{- fail (printf "cannot read the quantity %q: expected a number with an optional unit Ki, Mi, Gi, Ti, Pi, k, M, G, T or P (e.g. 4Gi)" $q) -}}
{{- end -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $q -}}
{{- $unit := trimPrefix $num $q -}}
{{- $mult := dict "" 1.0 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 -}}
{{- printf "%.0f" (floor (mulf (float64 $num) (get $mult $unit))) -}}
{{- end }}

{{/* --model-memory-budget: the explicit value, else fractionOfLimit x limits.memory in MiB
     (rounded down); empty when neither is set (unlimited). */}}
{{- define "mmserve.memoryBudget" -}}
{{- $b := .Values.memoryBudget -}}
{{- $limit := dig "limits" "memory" "" (.Values.resources | default dict) -}}
{{- if ne (toString $b.value) "" -}}
{{- toString $b.value -}}
{{- else if and $limit $b.fractionOfLimit -}}
{{- $f := float64 $b.fractionOfLimit -}}
{{- if or (le $f 0.0) (gt $f 1.0) }}{{ fail (printf "memoryBudget.fractionOfLimit must be in (0, 1], not %v" $b.fractionOfLimit) }}{{ end -}}
{{- $mib := floor (divf (mulf (float64 (include "mmserve.bytes" $limit)) $f) 1048576.0) -}}
{{- if lt $mib 1.0 }}{{ fail (printf "memoryBudget: %v of the memory limit %v is under 1 MiB" $b.fractionOfLimit $limit) }}{{ end -}}
{{- printf "%.0fMiB" $mib -}}
{{- end -}}
{{- end }}

{{/* --model-cache-size: fillFraction of the cache volume (the claim, else the emptyDir's limit)
     in MiB, rounded down. */}}
{{- define "mmserve.cacheSize" -}}
{{- $c := .Values.modelCache -}}
{{- $size := ternary $c.storage $c.emptyDirSizeLimit (eq (toString $c.persistent) "true") -}}
{{- $f := float64 $c.fillFraction -}}
{{- if or (le $f 0.0) (gt $f 1.0) }}{{ fail (printf "modelCache.fillFraction must be in (0, 1], not %v" $c.fillFraction) }}{{ end -}}
{{- printf "%.0fMiB" (floor (divf (mulf (float64 (include "mmserve.bytes" $size)) $f) 1048576.0)) -}}
{{- end }}

{{/* --exit-timeout-secs: what the grace period leaves after the preStop sleep and a margin. */}}
{{- define "mmserve.exitTimeout" -}}
{{- $t := sub (sub (int .Values.terminationGracePeriodSeconds) (int .Values.lifecycle.preStopSleepSeconds)) (int .Values.lifecycle.exitMarginSeconds) -}}
{{- if lt (int $t) 1 -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed lifecycle.preStopSleepSeconds (%v) + lifecycle.exitMarginSeconds (%v) by 1 s or more: it is what the server has to finish in-flight requests" .Values.terminationGracePeriodSeconds .Values.lifecycle.preStopSleepSeconds .Values.lifecycle.exitMarginSeconds) -}}
{{- end -}}
{{- $t -}}
{{- end }}

{{/* The HPA's per-pod averageValue: targetPerSlot x executionSlots, as a milli-quantity. */}}
{{- define "mmserve.hpaTarget" -}}
{{- $milli := floor (mulf (mulf (float64 .Values.autoscaling.targetPerSlot) (float64 .Values.executionSlots)) 1000.0) -}}
{{- if lt $milli 1.0 }}{{ fail "autoscaling.targetPerSlot x executionSlots must be positive" }}{{ end -}}
{{- printf "%.0fm" $milli -}}
{{- end }}

{{/* Checks of values combinations that cannot work, each failing with what to change. */}}
{{- define "mmserve.validate" -}}
{{- $v := .Values -}}
{{- if not (has $v.router.kind (list "nginx" "envoy")) }}
{{- fail (printf "router.kind must be nginx or envoy, not %q" $v.router.kind) }}
{{- end }}
{{- if and $v.router.enabled (eq $v.router.kind "nginx") $v.autoscaling.enabled }}
{{- fail "router.enabled with router.kind=nginx and autoscaling.enabled cannot be combined: the nginx router lists the StatefulSet's replicaCount pods by name and would never send to pods the HPA adds. Use router.kind=envoy (it follows the headless Service's DNS), or turn autoscaling off." }}
{{- end }}
{{- if and $v.router.enabled $v.tls.enabled }}
{{- fail "router.enabled with tls.enabled is not supported: the router speaks plain HTTP/gRPC to the replicas. Terminate TLS in front of the router instead." }}
{{- end }}
{{- if not (has $v.modelRepository.controlMode (list "none" "explicit" "poll")) }}
{{- fail (printf "modelRepository.controlMode must be none, explicit or poll, not %q" $v.modelRepository.controlMode) }}
{{- end }}
{{- if and (not $v.modelRepository.uris) (not $v.credentials.repositoryKey) }}
{{- fail "set modelRepository.uris or credentials.repositoryKey: the server needs at least one --model-repository" }}
{{- end }}
{{- if and $v.credentials.repositoryKey (not (include "mmserve.credentialsSecret" .)) }}
{{- fail "credentials.repositoryKey needs credentials.existingSecret or credentials.create" }}
{{- end }}
{{- if and $v.tenants.enabled (not $v.tenants.existingSecret) (not $v.tenants.create) }}
{{- fail "tenants.enabled needs tenants.existingSecret or tenants.create with tenants.content" }}
{{- end }}
{{- if and $v.tenants.enabled $v.tenants.create (not $v.tenants.existingSecret) (not $v.tenants.content) }}
{{- fail "tenants.create needs tenants.content (the tenants file's YAML)" }}
{{- end }}
{{- if and $v.tls.enabled (not $v.tls.existingSecret) }}
{{- fail "tls.enabled needs tls.existingSecret (a kubernetes.io/tls Secret; ca.crt too for tls.clientCA)" }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if not (has $v.autoscaling.metric (list "mmserve_inference_in_flight" "mmserve_inference_queue_depth")) }}
{{- fail (printf "autoscaling.metric must be mmserve_inference_in_flight or mmserve_inference_queue_depth, not %q" $v.autoscaling.metric) }}
{{- end }}
{{- if and $v.podDisruptionBudget.enabled (ne (toString $v.podDisruptionBudget.minAvailable) "") (ne (toString $v.podDisruptionBudget.maxUnavailable) "") }}
{{- fail "podDisruptionBudget: set one of minAvailable or maxUnavailable (the other to \"\")" }}
{{- end }}
{{- if and $v.router.enabled (lt (int $v.router.tries) 1) }}
{{- fail "router.tries must be 1 or more" }}
{{- end }}
{{- if and $v.router.enabled (eq $v.router.kind "nginx") (lt (int $v.replicaCount) 1) }}
{{- fail "the nginx router needs replicaCount >= 1" }}
{{- end }}
{{- range $v.router.hotModels }}
{{- if not (regexMatch "^[A-Za-z0-9_.-]+$" (toString .)) }}
{{- fail (printf "router.hotModels: %q is not a plain model name (letters, digits, '.', '_', '-')" .) }}
{{- end }}
{{- end }}
{{- end }}
