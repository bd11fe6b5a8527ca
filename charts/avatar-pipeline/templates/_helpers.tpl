{{/* nginx `map $http_origin` entries: the allowed CORS origins (corsOrigins). */}}
{{- define "avatar-pipeline.corsOrigins" -}}
{{- range .Values.corsOrigins }}
{{ . | quote }} $http_origin;
{{- end }}
{{- end }}
