#!/usr/bin/env bash
# Install what the end-to-end suite needs on the CURRENT kubectl context (any cluster: kind,
# a cloud cluster, a GPU cluster): a minimal Prometheus (tests/e2e/manifests/prometheus.yaml)
# and the chart with the demo worker in a namespace enforcing Pod Security "restricted".
# hack/kind-up.sh calls it after loading the images into kind; on another cluster push both
# images to a registry it can pull from first, then:
#
#   OPERATOR_IMAGE=registry/latencyslo/operator:TAG WORKER_IMAGE=registry/latencyslo/worker:TAG \
#   PULL_POLICY=IfNotPresent hack/e2e-install.sh
#   make e2e KUBECONFIG=~/.kube/config E2E_WORKER_IMAGE=registry/latencyslo/worker:TAG \
#     E2E_IMAGE_PULL_POLICY=IfNotPresent
#
# Environment: E2E_NAMESPACE (latencyslo-e2e), OPERATOR_IMAGE / WORKER_IMAGE
# (latencyslo/{operator,worker}:e2e), PULL_POLICY (Never: images loaded into the nodes),
# HELM_VALUES (an extra values file, e.g. GPU resources for the demo worker).
set -euo pipefail
cd "$(dirname "$0")/.."

NAMESPACE=${E2E_NAMESPACE:-latencyslo-e2e}
OPERATOR_IMAGE=${OPERATOR_IMAGE:-latencyslo/operator:${IMAGE_TAG:-e2e}}
WORKER_IMAGE=${WORKER_IMAGE:-latencyslo/worker:${IMAGE_TAG:-e2e}}
PULL_POLICY=${PULL_POLICY:-Never}
RELEASE=latencyslo

log() { printf '\n==> %s\n' "$*"; }
need() {
  command -v "$1" >/dev/null 2>&1 || { echo "e2e-install: '$1' is not on PATH ($2)" >&2; exit 2; }
}
need kubectl "https://kubernetes.io/docs/tasks/tools/"
need helm "https://helm.sh/docs/intro/install/"
cmp -s crds/latencyslos.latencyslo.io.yaml helm/latencyslo/crds/latencyslos.latencyslo.io.yaml \
  || { echo "e2e-install: the chart's CRD differs from crds/: run 'make chart-sync'" >&2; exit 2; }
echo "context: $(kubectl config current-context)"

log "Prometheus"
kubectl apply -f tests/e2e/manifests/prometheus.yaml
kubectl -n monitoring rollout status deployment/prometheus --timeout=180s

log "the chart, with the demo worker, in namespace '${NAMESPACE}'"
kubectl create namespace "${NAMESPACE}" --dry-run=client -o yaml | kubectl apply -f -
kubectl label --overwrite namespace "${NAMESPACE}" \
  pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted
# Helm installs crds/ only on first install; apply it every time so that a changed CRD lands.
kubectl apply --server-side --force-conflicts -f helm/latencyslo/crds/
helm upgrade --install "${RELEASE}" helm/latencyslo \
  --namespace "${NAMESPACE}" \
  --values tests/e2e/values-e2e.yaml \
  ${HELM_VALUES:+--values "${HELM_VALUES}"} \
  --set operator.image.repository="${OPERATOR_IMAGE%:*}" \
  --set operator.image.tag="${OPERATOR_IMAGE##*:}" \
  --set operator.image.pullPolicy="${PULL_POLICY}" \
  --set demo.image.repository="${WORKER_IMAGE%:*}" \
  --set demo.image.tag="${WORKER_IMAGE##*:}" \
  --set demo.image.pullPolicy="${PULL_POLICY}" \
  --set "operator.watchNamespaces={${NAMESPACE}}" \
  --wait --timeout 10m
kubectl -n "${NAMESPACE}" rollout status deployment/${RELEASE}-operator --timeout=180s
kubectl -n "${NAMESPACE}" rollout status deployment/${RELEASE}-demo-worker --timeout=600s
log "ready: kubectl -n ${NAMESPACE} get pods,lslo"
