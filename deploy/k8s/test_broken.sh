#!/usr/bin/env bash
# Negative test of deploy/k8s/validate.py: each case breaks a copy of the manifests in one way
# (a typo'd field, a wrong type, a missing required field, a dangling reference, ...) and
# expects validate.py to exit 1 with an error naming the file, document and field.
# usage: deploy/k8s/test_broken.sh WORK_DIR
# WORK_DIR is emptied. Needs /usr/bin/python3 with python3-yaml and python3-kubernetes.
set -euo pipefail
if [[ $# -ne 1 ]]; then
  echo "usage: $0 WORK_DIR" >&2
  exit 2
fi
k8s=$(cd "$(dirname "$0")" && pwd)
work=$1
rm -rf "$work"
mkdir -p "$work"
failures=0 cases=0

# expect NAME WANT SCRIPT: copy the manifests, run SCRIPT (sed edits) in the copy, then
# validate: status 1 and an error containing WANT.
expect() {
  local name=$1 want=$2 script=$3 dir="$work/$1" out rc
  cases=$((cases + 1))
  mkdir -p "$dir"
  cp "$k8s"/*.yaml "$dir"/
  (cd "$dir" && eval "$script")
  if cmp -s "$k8s/server.yaml" "$dir/server.yaml" && cmp -s "$k8s/workers.yaml" "$dir/workers.yaml" \
     && cmp -s "$k8s/secret.yaml" "$dir/secret.yaml" && cmp -s "$k8s/configmap.yaml" "$dir/configmap.yaml" \
     && cmp -s "$k8s/kustomization.yaml" "$dir/kustomization.yaml" && [[ $(ls "$dir" | wc -l) -eq $(ls "$k8s"/*.yaml | wc -l) ]]; then
    echo "test_broken: $name: the edit changed nothing (the manifests changed?)" >&2
    failures=$((failures + 1))
    return
  fi
  set +e
  out=$(/usr/bin/python3 "$k8s/validate.py" "$dir" 2>&1)
  rc=$?
  set -e
  if [[ $rc -ne 1 || $out != *"$want"* ]]; then
    echo "test_broken: $name: want status 1 and '$want'; got status $rc:" >&2
    echo "$out" >&2
    failures=$((failures + 1))
  else
    echo "test_broken: $name: ok ($(grep -F -- "$want" <<< "$out" | head -n 1))"
  fi
}

# Schema.
expect typo_field \
  "server.yaml: document 2 (Deployment fedtrain-server): spec.template.spec.containers[0].ports[0].containerPrt: unknown field in V1ContainerPort" \
  "sed -i 's/containerPort: 50051/containerPrt: 50051/' server.yaml"
expect wrong_type "workers.yaml: document 2 (StatefulSet fedtrain-worker): spec.replicas: is a string ('2'); want an integer" \
  "sed -i 's/replicas: 2/replicas: \"2\"/' workers.yaml"
expect unquoted_arg "spec.template.spec.containers[0].args[4]: is an integer (2); want a string (quote it)" \
  "sed -i 's/- \"2\"/- 2/' server.yaml"
expect missing_required "workers.yaml: document 2 (StatefulSet fedtrain-worker): spec.serviceName: required field of V1StatefulSetSpec is missing" \
  "sed -i '/serviceName: fedtrain-workers/d' workers.yaml"
expect bad_enum "spec.podManagementPolicy: 'parallel' is not one of OrderedReady, Parallel" \
  "sed -i 's/podManagementPolicy: Parallel/podManagementPolicy: parallel/' workers.yaml"
expect bad_kind "server.yaml: document 3 (Service fedtrain-server): kind: no resource Service in API apps/v1" \
  "sed -i '0,/^apiVersion: v1\$/! {0,/^apiVersion: v1\$/ s//apiVersion: apps\\/v1/}' server.yaml"
expect not_base64 "secret.yaml: document 1 (Secret fedtrain-secrets): data.token: is not base64" \
  "sed -i 's/^  token: .*/  token: not base64!/' secret.yaml"
expect namespace "configmap.yaml: document 1 (ConfigMap fedtrain-config): metadata.namespace: the manifests are namespace-free" \
  "sed -i 's/^  name: fedtrain-config/  name: fedtrain-config\\n  namespace: default/' configmap.yaml"
# References.
expect dangling_secret_key "spec.template.spec.containers[0].env[1].valueFrom.secretKeyRef: Secret 'fedtrain-secrets' has no key 'tokn'" \
  "sed -i 's/key: token/key: tokn/' workers.yaml"
expect undeclared_volume "workers.yaml: document 2 (StatefulSet fedtrain-worker): spec.template.spec.containers[0].volumeMounts[1].name: no volume 'stat' in the pod" \
  "sed -i 's/^            - name: state\$/            - name: stat/' workers.yaml"
expect missing_pvc "spec.template.spec.volumes[2].persistentVolumeClaim.claimName: no PersistentVolumeClaim 'fedtrain-state'" \
  "sed -i 's/claimName: fedtrain-server-state/claimName: fedtrain-state/' server.yaml"
expect selector_mismatch "server.yaml: document 3 (Service fedtrain-server): spec.selector: selects no pod template" \
  "sed -i '/^kind: Service/,\$ s/component: server/component: srv/' server.yaml"
expect target_port "spec.ports[0].targetPort: 'grpcs' is not a container port of the pods of Deployment fedtrain-server" \
  "sed -i 's/targetPort: grpc/targetPort: grpcs/' server.yaml"
expect probe_port "readinessProbe.tcpSocket.port: 'rpc' is not a port of container 'server'" \
  "sed -i 's/port: grpc\$/port: rpc/' server.yaml"
expect unlisted_file "kustomization.yaml: resources: extra.yaml is not listed" \
  "cp configmap.yaml extra.yaml && sed -i 's/name: fedtrain-config/name: extra/' extra.yaml"
# fedtrain's command lines.
expect worker_count "server.yaml: document 2 (Deployment fedtrain-server): spec.template.spec.containers[0].args: --workers 2 but the worker pods have 3 replicas" \
  "sed -i 's/replicas: 2/replicas: 3/' workers.yaml"
expect config_key "--config /etc/fedtrain/config/exp.json: ConfigMap 'fedtrain-config' has no key 'exp.json'" \
  "sed -i 's#/etc/fedtrain/config/experiment.json#/etc/fedtrain/config/exp.json#' server.yaml"
expect tls_missing "the server serves TLS (--tls-cert): the worker needs --tls-ca" \
  "sed -i '/--tls-ca /d' workers.yaml"
expect state_not_on_volume "--state-dir /tmp/state: no volume is mounted there" \
  "sed -i 's#--state-dir /var/lib/fedtrain/worker#--state-dir /tmp/state#' workers.yaml"
expect wrong_service "--server fedtrain-srv:50051: no Service 'fedtrain-srv'" \
  "sed -i 's/--server fedtrain-server:50051/--server fedtrain-srv:50051/' workers.yaml"

echo "test_broken: $((cases - failures)) passed, $failures failed"
[[ $failures -eq 0 ]]
