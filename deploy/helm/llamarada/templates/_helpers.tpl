{{/* Names, labels and the pieces every pod shares. */}}

{{- define "llamarada.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "llamarada.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: include with (list $ "api"). */}}
{{- define "llamarada.selector" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ $.Chart.Name }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "llamarada.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "llamarada.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* An image reference, by digest when one is given: include with an image block. */}}
{{- define "llamarada.image" -}}
{{- if .digest -}}
{{- printf "%s:%s@%s" .repository .tag .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}
{{- end -}}

{{- define "llamarada.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
fsGroup: {{ .Values.podSecurity.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "llamarada.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Seconds a pod may take to stop: the drain deadline, a margin for the lifespan's close. */}}
{{- define "llamarada.stopSeconds" -}}
{{- add (int .Values.config.SERVER__DRAIN_TIMEOUT) 5 -}}
{{- end -}}

{{- define "llamarada.redisSecretName" -}}
{{- default (printf "%s-redis-url" (include "llamarada.fullname" .)) .Values.redis.external.existingSecret -}}
{{- end -}}

{{- define "llamarada.keysSecretName" -}}
{{- default (printf "%s-api-keys" (include "llamarada.fullname" .)) .Values.apiKeys.existingSecret -}}
{{- end -}}

{{/* The environment of every Llamarada container: the settings, and Redis' URL when external. */}}
{{- define "llamarada.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "llamarada.fullname" . }}-config
{{- if not .Values.redis.enabled }}
env:
  - name: LLAMARADA_REDIS_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "llamarada.redisSecretName" . }}
        key: {{ .Values.redis.external.key }}
{{- end }}
{{- end -}}

{{- define "llamarada.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The checkov waivers every workload shares, each with its reason. */}}
{{- define "llamarada.waivers" -}}
checkov.io/skip1: CKV_K8S_43=Images are pinned by tag; image.digest pins them by digest where the registry is known
{{- end -}}

{{/* The waivers of Llamarada's own pods (API, workers, models job). */}}
{{- define "llamarada.appWaivers" -}}
{{- include "llamarada.waivers" . }}
{{- if not .Values.redis.enabled }}
checkov.io/skip2: CKV_K8S_35=Settings come from the environment only; the external Redis URL (with its password) stays in a Secret
{{- end }}
{{- end -}}
