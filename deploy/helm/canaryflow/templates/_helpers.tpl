{{- define "canaryflow.labels" -}}
app.kubernetes.io/part-of: canaryflow
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
