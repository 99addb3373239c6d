{{/*
The operator's Deployment: the unsharded one (shard "") or shard `shard`'s
(`--shard=<key>`, its own Lease). Shard pods get labels the unsharded
Deployment's selector does not match (its selector cannot change), and are
behind no Service: the unsharded replicas receive every webhook and pass the
other shards' on through the channel. The UI is served by the unsharded ones.
Called with (dict "root" $ "shard" KEY).
*/}}
{{- define "kubemint.deployment" -}}
{{- $root := .root -}}
{{- $shard := .shard -}}
{{- $name := $root.Release.Name -}}
{{- $labels := printf "app.kubernetes.io/name: kubemint\napp.kubernetes.io/instance: %s" $root.Release.Name -}}
{{- with $shard -}}
{{- if or (gt (len .) 40) (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" .)) -}}
{{- fail (printf "shards: %q is not a usable shard key: use 1 to 40 lowercase letters, digits and '-', starting and ending with a letter or digit" .) -}}
{{- end -}}
{{- $name = printf "%s-shard-%s" $root.Release.Name . -}}
{{- $labels = printf "app.kubernetes.io/name: kubemint-shard\napp.kubernetes.io/instance: %s\nkubemint.io/shard: %s" $root.Release.Name . -}}
{{- end -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  replicas: {{ $root.Values.replicas }}
  {{- if not $root.Values.leaderElection }}
  strategy:
    type: Recreate # without leader election, never two controllers at once
  {{- end }}
  selector:
    matchLabels:
      {{- $labels | nindent 6 }}
  template:
    metadata:
      labels:
        {{- $labels | nindent 8 }}
    spec:
      serviceAccountName: {{ $root.Release.Name }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        fsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: kubemint
          image: "{{ $root.Values.image.repository }}:{{ $root.Values.image.tag | default $root.Chart.AppVersion }}"
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            - run
            - --log-format={{ $root.Values.logFormat }}
            {{- with $root.Values.watchNamespace }}
            - --namespace={{ . }}
            {{- end }}
            {{- if $root.Values.leaderElection }}
            - --leader-elect
            {{- end }}
            {{- with $root.Values.defaultServiceAccount }}
            - --default-service-account={{ . }}
            {{- end }}
            {{- if $root.Values.noCrossNamespaceRefs }}
            - --no-cross-namespace-refs
            {{- end }}
            {{- if $root.Values.allowLocalSources }}
            - --allow-local-sources
            {{- end }}
            {{- with $root.Values.limits.maxFileSize }}
            - --max-file-size={{ . }}
            {{- end }}
            {{- with $root.Values.limits.maxReleaseSize }}
            - --max-release-size={{ . }}
            {{- end }}
            {{- with $root.Values.limits.maxObjects }}
            - --max-objects={{ . }}
            {{- end }}
            {{- if and $root.Values.ui.enabled (not $shard) }}
            - --ui
            {{- end }}
            {{- with $shard }}
            - --shard={{ . }}
            {{- end }}
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            - name: KUBEMINT_CACHE_DIR
              value: /cache
            - name: KUBEMINT_CLUSTER_NAME
              value: {{ $root.Values.clusterName | default "default" | quote }}
            {{- with $root.Values.kustomize.command }}
            - name: KUBEMINT_KUSTOMIZE
              value: {{ . | quote }}
            {{- end }}
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
          resources:
            {{- toYaml $root.Values.resources | nindent 12 }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: cache
              mountPath: /cache
            # kustomize builds run in private directories under /tmp (the
            # root filesystem is read-only).
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: cache
          emptyDir: {}
        - name: tmp
          emptyDir: {}
{{- end -}}
