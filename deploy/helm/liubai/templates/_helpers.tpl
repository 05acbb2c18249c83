{{/* The prefix of every object's name: <release>-liubai, or the release name when it says liubai. */}}
{{- define "liubai.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else if contains "liubai" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-liubai" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "liubai.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: liubai
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Selector labels of one part: (dict "root" $ "part" "api") */}}
{{- define "liubai.selectorLabels" -}}
app.kubernetes.io/name: liubai
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .part }}
{{- end -}}

{{- define "liubai.partLabels" -}}
{{ include "liubai.labels" .root }}
{{ include "liubai.selectorLabels" . }}
{{- end -}}

{{/* An image reference of a Dockerfile target: (dict "root" $ "target" "api") */}}
{{- define "liubai.image" -}}
{{- $image := index .root.Values.image .target -}}
{{- printf "%s:%s" $image.repository (default .root.Chart.AppVersion $image.tag) -}}
{{- end -}}

{{- define "liubai.neo4jSecret" -}}
{{- default (printf "%s-neo4j" (include "liubai.fullname" .)) .Values.neo4j.existingSecret -}}
{{- end -}}

{{/* The store's URL and password, for every program that writes to it. */}}
{{- define "liubai.storeEnv" -}}
- name: LIUBAI_STORE
  valueFrom:
    secretKeyRef:
      name: {{ include "liubai.neo4jSecret" . }}
      key: {{ .Values.neo4j.urlKey }}
- name: LIUBAI_NEO4J_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "liubai.neo4jSecret" . }}
      key: {{ .Values.neo4j.passwordKey }}
{{- end -}}

{{- define "liubai.restricted" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{- define "liubai.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* nodeSelector, tolerations, affinity and pull secrets of one part's Pods: (dict "root" $ "part" .Values.api) */}}
{{- define "liubai.scheduling" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .part.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .part.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .part.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "liubai.webhookTLSSecret" -}}
{{- if .Values.webhook.tls.certManager.enabled -}}
{{- default (printf "%s-webhook-tls" (include "liubai.fullname" .)) .Values.webhook.tls.secretName -}}
{{- else -}}
{{- required "webhook.tls.secretName: name the Secret (tls.crt, tls.key) of the webhook's certificate, or set webhook.tls.certManager.enabled" .Values.webhook.tls.secretName -}}
{{- end -}}
{{- end -}}

{{/* Fails the render, with what to set, where the values cannot make a working installation. */}}
{{- define "liubai.checks" -}}
{{- with .Values.neo4j -}}
{{- if and .existingSecret (or .url .password) -}}
{{- fail "neo4j: give either neo4j.existingSecret or neo4j.url and neo4j.password, not both" -}}
{{- end -}}
{{- if and (not .existingSecret) (or .url .password) (not (and .url .password)) -}}
{{- fail "neo4j: give both neo4j.url and neo4j.password (or neither, and create the Secret yourself)" -}}
{{- end -}}
{{- end -}}
{{- range $target, $image := .Values.image -}}
{{- if eq $image.tag "latest" -}}
{{- fail (printf "image.%s.tag: latest names no release; give a version (empty: the chart's appVersion)" $target) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.webhook.enabled (not .Values.webhook.tls.certManager.enabled) (not .Values.webhook.tls.caBundle) -}}
{{- fail "webhook.tls.caBundle: give the base64 PEM of the CA that signed the webhook's certificate, or set webhook.tls.certManager.enabled" -}}
{{- end -}}
{{- end -}}
