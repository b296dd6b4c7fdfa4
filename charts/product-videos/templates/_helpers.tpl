{{/* Names, labels, and the one Deployment + Service definition every service uses. */}}

{{- define "product-videos.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "product-videos.fullname" -}}
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

{{/* The services the chart knows, in a stable order. */}}
{{- define "product-videos.services" -}}
gateway notifier prompt video
{{- end }}

{{/* Labels of every object; pass (dict "root" $ "component" "gateway"). */}}
{{- define "product-videos.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "product-videos.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Values.image.tag | default .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: product-videos
{{- end }}

{{- define "product-videos.selectorLabels" -}}
app.kubernetes.io/name: {{ include "product-videos.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "product-videos.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "product-videos.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* `<registry>/<repository>-<service>:<tag>`, or the service's own full reference. */}}
{{- define "product-videos.image" -}}
{{- $svc := index .root.Values .name }}
{{- if $svc.image }}
{{- $svc.image }}
{{- else }}
{{- $img := .root.Values.image }}
{{- $repo := printf "%s-%s" $img.repository .name }}
{{- if $img.registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" $img.registry) $repo }}{{ end }}
{{- printf "%s:%s" $repo ($img.tag | default .root.Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The Secret holding the application's secrets (ours, or the operator's). */}}
{{- define "product-videos.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "product-videos.fullname" .) }}
{{- end }}

{{/* Credentials of the in-chart backing services, and the URLs built from them. */}}
{{- define "product-videos.backendsSecretName" -}}
{{- include "product-videos.fullname" . }}-backends
{{- end }}

{{- define "product-videos.anyBackend" -}}
{{- if or .Values.rabbitmq.enabled .Values.mongodb.enabled .Values.minio.enabled }}true{{ end }}
{{- end }}

{{/* An in-chart backend's address, namespace-qualified: KEDA's operator (another
     namespace) reads the same AMQP_URL as the services. (dict "root" $ "name" "rabbitmq") */}}
{{- define "product-videos.backendHost" -}}
{{- printf "%s-%s.%s.svc" (include "product-videos.fullname" .root) .name .root.Release.Namespace }}
{{- end }}

{{/* The Secret that holds AMQP_URL (read by KEDA as well as by the services). */}}
{{- define "product-videos.amqpSecretName" -}}
{{- if .Values.rabbitmq.enabled }}
{{- include "product-videos.backendsSecretName" . }}
{{- else }}
{{- include "product-videos.secretName" . }}
{{- end }}
{{- end }}

{{/* A generated secret value that survives upgrades: the given value, else the one
     already stored in the cluster, else a new random one. (dict "root" "secret" "key" "value") */}}
{{- define "product-videos.keepOrGenerate" -}}
{{- if .value }}
{{- .value }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .secret }}
{{- if and $existing $existing.data (hasKey $existing.data .key) }}
{{- index $existing.data .key | b64dec }}
{{- else }}
{{- randAlphaNum 40 }}
{{- end }}
{{- end }}
{{- end }}

{{/* A work queue's name, with the AMQP prefix the services use. */}}
{{- define "product-videos.queue" -}}
{{- printf "%s%s" (.root.Values.config.AMQP_PREFIX | default "") .name }}
{{- end }}

{{/* PromQL regex matching a queue name exactly (dots escaped). */}}
{{- define "product-videos.queueRegex" -}}
{{- include "product-videos.queue" . | replace "." "\\\\." }}
{{- end }}

{{/* Whether an autoscaler owns the service's replica count. */}}
{{- define "product-videos.autoscaled" -}}
{{- $v := .root.Values }}
{{- if and $v.autoscaling.enabled (has .name (list "gateway" "notifier")) }}true{{ end }}
{{- if and $v.keda.enabled (has .name (list "prompt" "video")) }}true{{ end }}
{{- end }}

{{/* One env entry: a scalar value, or a map that becomes `valueFrom`. */}}
{{- define "product-videos.envVar" -}}
- name: {{ .name }}
{{- if kindIs "map" .value }}
  valueFrom: {{- toYaml .value | nindent 4 }}
{{- else }}
  value: {{ .value | toString | quote }}
{{- end }}
{{- end }}

{{/* The port name of a service's /healthz, /readyz with detail and /metrics: `ops` for the
     gateway and notifier (`opsPort`, never routed by the ingress), else its one port. */}}
{{- define "product-videos.opsPortName" -}}
{{- if (index .root.Values .name).opsPort }}ops{{ else }}http{{ end }}
{{- end }}

{{/*
The Deployment and Service of one service: (dict "root" $ "name" "gateway").
Probes: /healthz (alive), /readyz (broker, database and storage reachable), on the ops port.
*/}}
{{- define "product-videos.service" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $v := $root.Values }}
{{- $svc := index $v $name }}
{{- $fullname := include "product-videos.fullname" $root }}
{{- /* Each setting from the service's block when it has it, else from `defaults`. */}}
{{- $set := dict }}
{{- range $key := list "resources" "securityContext" "podSecurityContext" "tmpSizeLimit" "preStopSleepSeconds" "terminationGracePeriodSeconds" "podAnnotations" "podLabels" "nodeSelector" "tolerations" "affinity" "topologySpreadConstraints" "probes" }}
{{- $_ := set $set $key (ternary (index $svc $key) (index $v.defaults $key) (hasKey $svc $key)) }}
{{- end }}
{{- $grace := int $set.terminationGracePeriodSeconds }}
{{- $preStop := int $set.preStopSleepSeconds }}
{{- /* The broker waits this long for in-flight handlers, and still ends before SIGKILL. */}}
{{- $env := dict "UVICORN_PORT" (toString $svc.port) "GRACEFUL_TIMEOUT" (toString (max 1 (sub (sub $grace $preStop) 5))) }}
{{- $ops := include "product-videos.opsPortName" . }}
{{- if $svc.opsPort }}
{{- $_ := set $env "OPS_PORT" (toString $svc.opsPort) }}
{{- $_ := set $env "OPS_HOST" "0.0.0.0" }}
{{- end }}
{{- if $v.rabbitmq.enabled }}
{{- $_ := set $env "AMQP_URL" (dict "secretKeyRef" (dict "name" (include "product-videos.backendsSecretName" $root) "key" "AMQP_URL")) }}
{{- end }}
{{- if $v.mongodb.enabled }}
{{- $_ := set $env "MONGODB_URL" (dict "secretKeyRef" (dict "name" (include "product-videos.backendsSecretName" $root) "key" "MONGODB_URL")) }}
{{- end }}
{{- if $v.minio.enabled }}
{{- range $key := list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" }}
{{- $_ := set $env $key (dict "secretKeyRef" (dict "name" (include "product-videos.backendsSecretName" $root) "key" $key)) }}
{{- end }}
{{- end }}
{{- $env = mergeOverwrite $env (deepCopy ($v.defaults.env | default dict)) (deepCopy ($svc.env | default dict)) }}
{{- $ctx := dict "root" $root "component" $name }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}-{{ $name }}
  labels:
    {{- include "product-videos.labels" $ctx | nindent 4 }}
spec:
  {{- if not (include "product-videos.autoscaled" .) }}
  replicas: {{ $svc.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  selector:
    matchLabels:
      {{- include "product-videos.selectorLabels" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "product-videos.labels" $ctx | nindent 8 }}
        {{- with $set.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # Pods roll when a setting or a secret changes.
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
        {{- with $set.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "product-videos.serviceAccountName" $root }}
      # No service talks to the Kubernetes API.
      automountServiceAccountToken: false
      enableServiceLinks: false
      {{- with $v.image.pullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $set.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $grace }}
      containers:
        - name: {{ $name }}
          image: {{ include "product-videos.image" . | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          ports:
            - name: http
              containerPort: {{ $svc.port }}
              protocol: TCP
            {{- if $svc.opsPort }}
            - name: ops
              containerPort: {{ $svc.opsPort }}
              protocol: TCP
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ $fullname }}
            - secretRef:
                name: {{ include "product-videos.secretName" $root }}
          env:
            {{- range $key := keys $env | sortAlpha }}
            {{- include "product-videos.envVar" (dict "name" $key "value" (index $env $key)) | nindent 12 }}
            {{- end }}
          startupProbe:
            httpGet: {path: /healthz, port: {{ $ops }}}
            {{- toYaml $set.probes.startup | nindent 12 }}
          livenessProbe:
            httpGet: {path: /healthz, port: {{ $ops }}}
            {{- toYaml $set.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet: {path: /readyz, port: {{ $ops }}}
            {{- toYaml $set.probes.readiness | nindent 12 }}
          {{- if gt $preStop 0 }}
          lifecycle:
            preStop:
              exec:
                command: ["sleep", "{{ $preStop }}"]
          {{- end }}
          resources:
            {{- toYaml $set.resources | nindent 12 }}
          securityContext:
            {{- toYaml $set.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if eq $v.storage.type "filesystem" }}
            - name: objects
              mountPath: {{ $v.storage.filesystem.mountPath }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $set.tmpSizeLimit }}
        {{- if eq $v.storage.type "filesystem" }}
        - name: objects
          persistentVolumeClaim:
            claimName: {{ $v.storage.filesystem.existingClaim | default (printf "%s-objects" $fullname) }}
        {{- end }}
      {{- with $set.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $set.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $set.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $set.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- /* A constraint without a labelSelector spreads this service's pods. */}}
        {{- range . }}
        - {{ toYaml (merge (deepCopy .) (dict "labelSelector" (dict "matchLabels" (include "product-videos.selectorLabels" $ctx | fromYaml)))) | nindent 10 | trim }}
        {{- end }}
      {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}-{{ $name }}
  labels:
    {{- include "product-videos.labels" $ctx | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "product-videos.selectorLabels" $ctx | nindent 4 }}
  ports:
    - name: http
      port: {{ $svc.port }}
      targetPort: http
      protocol: TCP
    {{- if $svc.opsPort }}
    # For Prometheus only: the ingress routes to `http`, never here.
    - name: ops
      port: {{ $svc.opsPort }}
      targetPort: ops
      protocol: TCP
    {{- end }}
{{- end }}

{{/* Combinations the schema cannot express, with a message that says what to set. */}}
{{- define "product-videos.validate" -}}
{{- $v := .Values }}
{{- $own := not $v.secrets.existingSecret }}
{{- if and $own (not $v.rabbitmq.enabled) (not $v.secrets.AMQP_URL) }}
{{- fail "No broker: set secrets.AMQP_URL, or secrets.existingSecret (with AMQP_URL), or rabbitmq.enabled=true" }}
{{- end }}
{{- if and $own (not $v.mongodb.enabled) (not $v.secrets.MONGODB_URL) }}
{{- fail "No database: set secrets.MONGODB_URL, or secrets.existingSecret (with MONGODB_URL), or mongodb.enabled=true" }}
{{- end }}
{{- if and $v.minio.enabled (ne $v.storage.type "s3") }}
{{- fail "minio.enabled needs storage.type=s3" }}
{{- end }}
{{- if and $v.minio.enabled $v.storage.s3.endpointUrl }}
{{- fail "storage.s3.endpointUrl must be empty when minio.enabled (the in-chart MinIO is used)" }}
{{- end }}
{{- if and $v.ingress.enabled (not (or $v.gateway.enabled $v.notifier.enabled)) }}
{{- fail "ingress.enabled needs the gateway or the notifier" }}
{{- end }}
{{- end }}

{{/* The hardened security context of the in-chart backing services (uid of the image). */}}
{{- define "product-videos.backendSecurity" -}}
podSecurityContext:
  runAsNonRoot: true
  runAsUser: {{ .uid }}
  runAsGroup: {{ .uid }}
  fsGroup: {{ .uid }}
  fsGroupChangePolicy: OnRootMismatch
  seccompProfile: {type: RuntimeDefault}
securityContext:
  runAsNonRoot: true
  runAsUser: {{ .uid }}
  runAsGroup: {{ .uid }}
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  capabilities: {drop: [ALL]}
  seccompProfile: {type: RuntimeDefault}
{{- end }}
