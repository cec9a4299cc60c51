#!/usr/bin/env bash
# Bring up the latencyslo end-to-end environment on kind, step by step (docs/install.md):
#   1. a kind cluster from kind-config.yaml,
#   2. both images built and loaded into the nodes (no registry),
#   3. hack/e2e-install.sh: a minimal Prometheus (tests/e2e/manifests/prometheus.yaml) and
#      the chart with the demo worker, in a namespace enforcing Pod Security "restricted".
# Idempotent: an existing cluster is reused, images are rebuilt (Docker's cache makes that
# quick) and the release is upgraded.
#
# Environment: KIND_CLUSTER (latencyslo-e2e), KIND_NODE_IMAGE (kind's default),
# E2E_NAMESPACE (latencyslo-e2e), IMAGE_TAG (e2e), HELM_VALUES (extra values file),
# SKIP_BUILD=1 to reuse images already loaded.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${KIND_CLUSTER:-latencyslo-e2e}
NAMESPACE=${E2E_NAMESPACE:-latencyslo-e2e}
TAG=${IMAGE_TAG:-e2e}
OPERATOR_IMAGE=latencyslo/operator:${TAG}
WORKER_IMAGE=latencyslo/worker:${TAG}

log() { printf '\n==> %s\n' "$*"; }
need() {
  command -v "$1" >/dev/null 2>&1 || { echo "kind-up: '$1' is not on PATH ($2)" >&2; exit 2; }
}
need docker "https://docs.docker.com/engine/install/"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
need helm "https://helm.sh/docs/intro/install/"
docker info >/dev/null 2>&1 || { echo "kind-up: no Docker daemon answers 'docker info'" >&2; exit 2; }
[ -f crds/latencyslos.latencyslo.io.yaml ] || { echo "kind-up: crds/latencyslos.latencyslo.io.yaml is missing" >&2; exit 2; }
cmp -s crds/latencyslos.latencyslo.io.yaml helm/latencyslo/crds/latencyslos.latencyslo.io.yaml \
  || { echo "kind-up: the chart's CRD differs from crds/: run 'make chart-sync'" >&2; exit 2; }

log "1. kind cluster '${CLUSTER}'"
if kind get clusters 2>/dev/null | grep -qx "${CLUSTER}"; then
  echo "reusing the existing cluster"
else
  kind create cluster --name "${CLUSTER}" --config kind-config.yaml \
    ${KIND_NODE_IMAGE:+--image "${KIND_NODE_IMAGE}"} --wait 180s
fi
kubectl config use-context "kind-${CLUSTER}" >/dev/null

if [ "${SKIP_BUILD:-0}" != "1" ]; then
  log "2. build and load the images"
  docker build -f operator/Dockerfile -t "${OPERATOR_IMAGE}" .
  docker build -f inference_worker/Dockerfile -t "${WORKER_IMAGE}" .
  kind load docker-image --name "${CLUSTER}" "${OPERATOR_IMAGE}" "${WORKER_IMAGE}"
fi

log "3. Prometheus and the chart (hack/e2e-install.sh)"
E2E_NAMESPACE="${NAMESPACE}" OPERATOR_IMAGE="${OPERATOR_IMAGE}" WORKER_IMAGE="${WORKER_IMAGE}" \
  PULL_POLICY=Never hack/e2e-install.sh
