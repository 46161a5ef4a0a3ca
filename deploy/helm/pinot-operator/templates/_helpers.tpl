{{- define "pinot-operator.name" -}}
{{- default .Release.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pinot-operator.labels" -}}
app.kubernetes.io/name: pinot-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: pinot-control-plane
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "pinot-operator.selector" -}}
app.kubernetes.io/name: pinot-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
