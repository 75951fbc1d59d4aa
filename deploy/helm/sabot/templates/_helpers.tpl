{{/* The chart's name, at most 63 characters. */}}
{{- define "sabot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's resources are named after it; "sabot" is not repeated. */}}
{{- define "sabot.fullname" -}}
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

{{- define "sabot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "sabot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels; the caller adds app.kubernetes.io/component. */}}
{{- define "sabot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sabot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sabot.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Settings shared by the HTTP replicas and the worker: credentials from the Secret, the
policy file from the ConfigMap, the rest from values. */}}
{{- define "sabot.env" -}}
{{- $secret := required "existingSecret: name the Secret that holds the credentials" .Values.existingSecret -}}
- name: SLACK_BOT_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.secretKeys.slackBotToken }}
- name: ATLASSIAN_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.secretKeys.atlassianApiKey }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.secretKeys.databaseUrl }}
- name: ATLASSIAN_ORG_ID
  value: {{ required "config.atlassianOrgId is required" .Values.config.atlassianOrgId | quote }}
{{- with .Values.config.atlassianSiteId }}
- name: ATLASSIAN_SITE_ID
  value: {{ . | quote }}
{{- end }}
- name: SABOT_POLICY
  value: /etc/sabot/policy.yml
- name: LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by both Deployments. */}}
{{- define "sabot.podSpec" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: policy
    configMap:
      name: {{ include "sabot.fullname" . }}-policy
  - name: tmp
    emptyDir: {}
{{- end }}

{{- define "sabot.volumeMounts" -}}
- name: policy
  mountPath: /etc/sabot
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}
