{{- define "canaryflow.labels" -}}
app.kubernetes.io/part-of: canaryflow
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}


{{- /* The worker's least-privilege rules, the same as deploy/rbac/clusterrole.yaml (a test keeps them equal), for
the ClusterRole and for each namespaced Role. */ -}}
{{- define "canaryflow.workerRules" }}
  - apiGroups: ["apps"]
    resources: ["deployments", "daemonsets"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  # StatefulSet targets are rolled out in place: their partition and template are patched; their pods are judged
  # by the StatefulSet controller's status counts, so the worker needs no right to read pods.
  - apiGroups: ["apps"]
    resources: ["statefulsets"]
    verbs: ["get", "patch"]
  - apiGroups: [""]
    resources: ["services", "configmaps", "secrets"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: ["autoscaling"]
    resources: ["horizontalpodautoscalers"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: ["keda.sh"]
    resources: ["scaledobjects"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  # Keptn metric templates (keptnmetric/… reads, analysis/… creates, reads back and deletes).
  - apiGroups: ["metrics.keptn.sh"]
    resources: ["keptnmetrics"]
    verbs: ["get"]
  - apiGroups: ["metrics.keptn.sh"]
    resources: ["analyses"]
    verbs: ["get", "create", "delete"]
  - apiGroups: ["traefik.io", "traefik.containo.us"]
    resources: ["traefikservices", "ingressroutes"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: ["gateway.networking.k8s.io"]
    resources: ["httproutes"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: ["apisix.apache.org"]
    resources: ["apisixroutes"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: ["networking.k8s.io"]
    resources: ["ingresses"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: ["split.smi-spec.io"]
    resources: ["trafficsplits"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: ["kuma.io"]
    resources: ["trafficroutes"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: ["gloo.solo.io"]
    resources: ["upstreams"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: ["gateway.solo.io"]
    resources: ["routetables"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: ["appmesh.k8s.aws"]
    resources: ["virtualnodes", "virtualrouters", "virtualservices"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  - apiGroups: ["networking.istio.io"]
    resources: ["virtualservices", "destinationrules"]
    verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
  - apiGroups: ["projectcontour.io"]
    resources: ["httpproxies"]
    verbs: ["get", "list", "watch", "create", "patch", "delete"]
  # GitOps mode (worker --gitops): the trigger watches Canaries (and their targets, ConfigMaps and Secrets, granted
  # above) and reads the MetricTemplates and AlertProviders a Canary references when it starts a rollout; the
  # rollout writes the Canary's status; the trigger patches a Canary only to keep its finalizer (revertOnDeletion).
  - apiGroups: ["flagger.app"]
    resources: ["canaries"]
    verbs: ["get", "list", "watch", "patch"]
  - apiGroups: ["flagger.app"]
    resources: ["canaries/status"]
    verbs: ["get", "update", "patch"]
  - apiGroups: ["flagger.app"]
    resources: ["metrictemplates", "alertproviders"]
    verbs: ["get"]
{{- end -}}
