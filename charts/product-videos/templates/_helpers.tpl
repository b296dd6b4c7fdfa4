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

{{/* An in-chart backend's address, namespace-qualified: KEDA's operator (another
     namespace) reads the same AMQP_URL as the services. (dict "root" $ "name" "rabbitmq") */}}
{{- define "product-videos.backendHost" -}}
{{- printf "%s-%s.%s.svc" (include "product-videos.fullname" .root) .name .root.Release.Namespace }}
{{- end }}

{{/* The Secret with an in-chart backend's credentials and URL: the operator's
     `<backend>.existingSecret`, else the chart's backends Secret. (dict "root" $ "name" "rabbitmq") */}}
{{- define "product-videos.backendSecret" -}}
{{- (index .root.Values .name).existingSecret | default (include "product-videos.backendsSecretName" .root) }}
{{- end }}

{{/* Whether the chart writes the backends Secret: an in-chart backend without its own Secret. */}}
{{- define "product-videos.ownBackendsSecret" -}}
{{- range $name := list "rabbitmq" "mongodb" "minio" }}
{{- $b := index $.Values $name }}
{{- if and $b.enabled (not $b.existingSecret) }}true{{ end }}
{{- end }}
{{- end }}

{{/* The Secret that holds AMQP_URL (read by KEDA as well as by the services). */}}
{{- define "product-videos.amqpSecretName" -}}
{{- if .Values.rabbitmq.enabled }}
{{- include "product-videos.backendSecret" (dict "root" . "name" "rabbitmq") }}
{{- else }}
{{- include "product-videos.secretName" . }}
{{- end }}
{{- end }}

{{/* A secret value the chart writes: the one given, else one derived from secrets.seed
     (a hash of the seed and the value's name, so the same values always render the same
     Secret: helm template, Argo CD and Flux agree, and a no-op upgrade changes nothing),
     else the render fails. (dict "root" $ "value" .password "name" "rabbitmq-password"
     "setting" "rabbitmq.password") */}}
{{- define "product-videos.secretValue" -}}
{{- if .value }}
{{- .value }}
{{- else if .root.Values.secrets.seed }}
{{- printf "%s/%s" .root.Values.secrets.seed .name | sha256sum | trunc 40 }}
{{- else }}
{{- fail (printf "%s is empty and there is no secrets.seed to derive it from: set secrets.seed once to a random string (openssl rand -hex 32) and keep it with your values, or set %s, or give the Secret yourself (existingSecret, docs/deploy.md)" .setting .setting) }}
{{- end }}
{{- end }}

{{/* What the pods read from Secrets the chart writes, hashed: a changed secret rolls them.
     The operator's own Secrets are named (switching to another one rolls them too). */}}
{{- define "product-videos.secretsChecksum" -}}
{{- $stored := list (include (print .Template.BasePath "/secret.yaml") .) (include (print .Template.BasePath "/backends-secret.yaml") .) }}
{{- range $name := list "secrets" "rabbitmq" "mongodb" "minio" }}
{{- $stored = append $stored ((index $.Values $name).existingSecret | default "") }}
{{- end }}
{{- $stored | toJson | sha256sum }}
{{- end }}

{{/* Whether the service's pods mount the filesystem storage volume: every service reads
     or writes objects (the gateway uploads and serves files, the workers read photos and
     store clips, the notifier's readiness checks the folder); nothing else mounts it. */}}
{{- define "product-videos.mountsStorage" -}}
{{- if and (eq .root.Values.storage.type "filesystem") (has .name (list "gateway" "notifier" "prompt" "video")) }}true{{ end }}
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
{{- range $key := list "resources" "securityContext" "podSecurityContext" "tmpSizeLimit" "preStopSleepSeconds" "terminationGracePeriodSeconds" "podAnnotations" "podLabels" "nodeSelector" "tolerations" "affinity" "topologySpreadConstraints" "probes" "priorityClassName" "extraEnv" "extraVolumes" "extraVolumeMounts" "initContainers" "sidecars" }}
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
{{- $_ := set $env "AMQP_URL" (dict "secretKeyRef" (dict "name" (include "product-videos.backendSecret" (dict "root" $root "name" "rabbitmq")) "key" "AMQP_URL")) }}
{{- end }}
{{- if $v.mongodb.enabled }}
{{- $_ := set $env "MONGODB_URL" (dict "secretKeyRef" (dict "name" (include "product-videos.backendSecret" (dict "root" $root "name" "mongodb")) "key" "MONGODB_URL")) }}
{{- end }}
{{- if $v.minio.enabled }}
{{- range $key := list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" }}
{{- $_ := set $env $key (dict "secretKeyRef" (dict "name" (include "product-videos.backendSecret" (dict "root" $root "name" "minio")) "key" $key)) }}
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
        checksum/secret: {{ include "product-videos.secretsChecksum" $root }}
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
      {{- with $set.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $set.initContainers }}
      initContainers:
        {{- toYaml . | nindent 8 }}
      {{- end }}
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
            {{- with $set.extraEnv }}
            {{- toYaml . | nindent 12 }}
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
            {{- if include "product-videos.mountsStorage" . }}
            - name: objects
              mountPath: {{ $v.storage.filesystem.mountPath }}
            {{- end }}
            {{- with $set.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
        {{- with $set.sidecars }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $set.tmpSizeLimit }}
        {{- if include "product-videos.mountsStorage" . }}
        - name: objects
          persistentVolumeClaim:
            claimName: {{ $v.storage.filesystem.existingClaim | default (printf "%s-objects" $fullname) }}
        {{- end }}
        {{- with $set.extraVolumes }}
        {{- toYaml . | nindent 8 }}
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
{{- fail "storage.type=filesystem replaces the in-chart MinIO: set minio.enabled=false too" }}
{{- end }}
{{- if and $v.minio.enabled $v.storage.s3.endpointUrl }}
{{- fail "storage.s3.endpointUrl names your own bucket: set minio.enabled=false to use it instead of the in-chart MinIO" }}
{{- end }}
{{- $fs := $v.storage.filesystem }}
{{- if and (eq $v.storage.type "filesystem") (not (has "ReadWriteMany" $fs.accessModes)) (not $fs.singleNode) }}
{{- fail (printf "storage.type=filesystem mounts one volume in every service pod, but a %s volume attaches to one node only (pods on other nodes stay in ContainerCreating with Multi-Attach errors). Use object storage (storage.type=s3 with minio.enabled=true, or your own bucket), or a ReadWriteMany storage class (storage.filesystem.storageClass=<class> and accessModes={ReadWriteMany}), or on a one-node cluster storage.filesystem.singleNode=true" (join "/" $fs.accessModes)) }}
{{- end }}
{{- if and $v.ingress.enabled (not (or $v.gateway.enabled $v.notifier.enabled)) }}
{{- fail "ingress.enabled needs the gateway or the notifier" }}
{{- end }}
{{- include "product-videos.refuseImpossibleChanges" . }}
{{- end }}

{{/* A storage quantity in bytes ("5Gi", "500M", "1e9"), as a float. */}}
{{- define "product-videos.bytes" -}}
{{- $q := toString . }}
{{- $num := regexFind "^[0-9.]+(e[0-9]+)?" $q }}
{{- $units := dict "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 }}
{{- mulf (float64 $num) (get $units (trimPrefix $num $q) | default 1.0) }}
{{- end }}

{{/*
Upgrades the API server would refuse after Helm has recorded the release as failed, refused
here first with what to do instead (docs/deploy.md, "Volume sizes"). They compare with what
the cluster holds, so they act on `helm upgrade` and `helm template --dry-run=server`; a
render without a cluster has nothing to compare with (lookup only decides whether to fail,
it never changes what is rendered).
*/}}
{{- define "product-videos.refuseImpossibleChanges" -}}
{{- $fullname := include "product-videos.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- range $name := list "rabbitmq" "mongodb" "minio" }}
{{- $b := index $.Values $name }}
{{- $sts := printf "%s-%s" $fullname $name }}
{{- $stored := and $b.enabled (lookup "apps/v1" "StatefulSet" $ns $sts) }}
{{- range (and $stored $stored.spec.volumeClaimTemplates) | default list }}
{{- if eq .metadata.name "data" }}
{{- $was := .spec.resources.requests.storage | toString }}
{{- $wasClass := .spec.storageClassName | default "" }}
{{- $pvc := printf "data-%s-0" $sts }}
{{- if ne (include "product-videos.bytes" $was) (include "product-videos.bytes" $b.persistence.size) }}
{{- fail (printf "%s.persistence.size is %v, but the StatefulSet %s was created with %s, and Kubernetes cannot change a StatefulSet's volume claim template. Keep %s. To grow the volume: kubectl -n %s patch pvc %s -p '%s' (its storage class must allow expansion), then kubectl -n %s delete statefulset %s --cascade=orphan (the pod and its data stay), then upgrade with the new size." $name $b.persistence.size $sts $was $was $ns $pvc (printf `{"spec":{"resources":{"requests":{"storage":"%v"}}}}` $b.persistence.size) $ns $sts) }}
{{- end }}
{{- if ne $wasClass ($b.persistence.storageClass | default "") }}
{{- fail (printf "%s.persistence.storageClass is %q, but the StatefulSet %s was created with %q, and Kubernetes cannot change a StatefulSet's volume claim template. Keep %q; moving the data to another class means a new claim: back up, uninstall, delete the claim %s, reinstall, restore." $name ($b.persistence.storageClass | default "") $sts $wasClass $wasClass $pvc) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $fs := .Values.storage.filesystem }}
{{- if and (eq .Values.storage.type "filesystem") (not $fs.existingClaim) }}
{{- $name := printf "%s-objects" $fullname }}
{{- with lookup "v1" "PersistentVolumeClaim" $ns $name }}
{{- $was := .spec.resources.requests.storage | toString }}
{{- $old := include "product-videos.bytes" $was | float64 }}
{{- $new := include "product-videos.bytes" $fs.size | float64 }}
{{- if lt $new $old }}
{{- fail (printf "storage.filesystem.size is %v, but the claim %s holds %s, and a volume cannot shrink. Keep %s (or more)." $fs.size $name $was $was) }}
{{- end }}
{{- if gt $new $old }}
{{- $class := .spec.storageClassName | default "" }}
{{- $sc := and $class (lookup "storage.k8s.io/v1" "StorageClass" "" $class) }}
{{- if not (and $sc $sc.allowVolumeExpansion) }}
{{- fail (printf "storage.filesystem.size is %v, but the claim %s holds %s on a volume that cannot grow (%s). Keep %s. For more room, create a larger ReadWriteMany claim yourself, copy the files over, and set storage.filesystem.existingClaim to it." $fs.size $name $was (ternary (printf "storage class %s does not allow volume expansion" $class) "a statically provisioned volume, without a storage class" (ne $class "")) $was) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* A backing service's image, pinned by its digest when one is given. (dict "image" "digest") */}}
{{- define "product-videos.backendImage" -}}
{{- if .digest }}{{ printf "%s@%s" .image .digest }}{{ else }}{{ .image }}{{ end }}
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

{{/* The MinIO bucket Job's spec (templates/minio.yaml names the Job by its hash). */}}
{{- define "product-videos.minioBucketJob" -}}
{{- $sec := include "product-videos.backendSecurity" (dict "uid" 1000) | fromYaml }}
{{- $secret := include "product-videos.backendSecret" (dict "root" . "name" "minio") }}
# Retries until MinIO answers (it may still be starting after the install).
backoffLimit: 20
template:
  metadata:
    labels:
      {{- include "product-videos.labels" (dict "root" . "component" "minio-bucket") | nindent 6 }}
  spec:
    restartPolicy: OnFailure
    automountServiceAccountToken: false
    enableServiceLinks: false
    securityContext:
      {{- toYaml $sec.podSecurityContext | nindent 6 }}
    containers:
      - name: mc
        image: {{ include "product-videos.backendImage" (dict "image" .Values.minio.mcImage "digest" .Values.minio.mcImageDigest) | quote }}
        command: [sh, -ec]
        args:
          - >-
            export MC_HOST_pv="http://${MINIO_ROOT_USER}:${MINIO_ROOT_PASSWORD}@{{ include "product-videos.backendHost" (dict "root" . "name" "minio") }}:9000";
            mc mb --ignore-existing "pv/{{ .Values.storage.s3.bucket }}"
        env:
          - {name: HOME, value: /tmp}
          - {name: MC_CONFIG_DIR, value: /tmp/.mc}
          - name: MINIO_ROOT_USER
            valueFrom: {secretKeyRef: {name: {{ $secret }}, key: AWS_ACCESS_KEY_ID}}
          - name: MINIO_ROOT_PASSWORD
            valueFrom: {secretKeyRef: {name: {{ $secret }}, key: AWS_SECRET_ACCESS_KEY}}
        resources:
          requests: {cpu: 10m, memory: 32Mi}
          limits: {cpu: 200m, memory: 128Mi}
        securityContext:
          {{- toYaml $sec.securityContext | nindent 10 }}
        volumeMounts:
          - {name: tmp, mountPath: /tmp}
    volumes:
      - name: tmp
        emptyDir: {sizeLimit: 64Mi}
{{- end }}
