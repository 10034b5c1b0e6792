#!/usr/bin/python3
"""Offline check of the Kubernetes manifests in deploy/k8s/ (no cluster, no kubectl).

usage: /usr/bin/python3 deploy/k8s/validate.py [DIR]
       /usr/bin/python3 deploy/k8s/validate.py --print-config-key CONFIGMAP KEY [DIR]

DIR (default: this script's folder) holds kustomization.yaml and the files it lists. Every
YAML document is checked against the API model classes of Debian's python3-kubernetes
(kubernetes.client.models: openapi_types gives each field's type, attribute_map its name in
YAML, and a setter that rejects None marks a required field):
  - apiVersion/kind name a known resource of that API group;
  - unknown fields, wrong types, missing required fields, a few enumerations, names that are
    not valid DNS labels, Secret data that is not base64 are errors;
then the references between documents:
  - Service selectors select a pod template, their targetPorts exist in those pods;
  - secretKeyRef/configMapKeyRef/envFrom, secret/configMap/PVC volumes and their items name
    objects and keys defined in the manifests; volumeMounts name declared volumes (or a
    StatefulSet's volumeClaimTemplates); probe ports exist; workload selectors match their
    pod labels; a StatefulSet's serviceName is a headless Service in the manifests;
  - kustomization.yaml lists every manifest file, and its images name a container image;
  - no object sets a namespace (the manifests are namespace-free);
and fedtrain's own command lines (`fedtrain server` / `fedtrain worker`):
  - the server's --workers equals the worker replicas; workers dial a Service that selects
    the server, on a port that reaches its --listen port;
  - files named by options (--config, --tls-*) lie in a mounted ConfigMap/Secret key, and
    --out/--state-dir on a writable volume; TLS options agree between server and workers;
    the token comes from the same Secret key for both, never from the command line.
Each error names the file, the document (1-based), the object and the field path; the exit
status is 1 when there is any, 2 on bad usage or a missing dependency.

The schema is the one of the python3-kubernetes package (22.6: Kubernetes 1.22 API): fields
added to Kubernetes after 1.22 are reported as unknown.
"""
import argparse
import base64
import binascii
import json
import os
import posixpath
import re
import shlex
import sys

try:
    import yaml
except ImportError:
    sys.exit("validate.py: needs python3-yaml (apt-get install python3-yaml); run with /usr/bin/python3")
try:
    import kubernetes
    import kubernetes.client as k8s
    from kubernetes.client import models as k8s_models
except ImportError:
    print("validate.py: needs python3-kubernetes (apt-get install python3-kubernetes); "
          "run with /usr/bin/python3", file=sys.stderr)
    sys.exit(2)

PROG = "validate.py"

# Enumerations the models do not check themselves (python3-kubernetes 22.6 has none).
ENUMS = {
    ("V1Container", "image_pull_policy"): {"Always", "IfNotPresent", "Never"},
    ("V1Container", "termination_message_policy"): {"File", "FallbackToLogsOnError"},
    ("V1ContainerPort", "protocol"): {"TCP", "UDP", "SCTP"},
    ("V1ServicePort", "protocol"): {"TCP", "UDP", "SCTP"},
    ("V1ServiceSpec", "type"): {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"},
    ("V1PodSpec", "restart_policy"): {"Always", "OnFailure", "Never"},
    ("V1StatefulSetSpec", "pod_management_policy"): {"OrderedReady", "Parallel"},
    ("V1DeploymentStrategy", "type"): {"Recreate", "RollingUpdate"},
    ("V1StatefulSetUpdateStrategy", "type"): {"OnDelete", "RollingUpdate"},
    ("V1PersistentVolumeClaimSpec", "access_modes"):
        {"ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"},
}
# Maps of resource quantities: the models say dict(str, str), the API takes a Quantity
# (a number, or a string such as "500m", "1Gi", "1e3").
QUANTITY_MAPS = {("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests")}
QUANTITY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[mkMGTPE]|[eE][+-]?[0-9]+)?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
KUSTOMIZATION_KEYS = {
    "apiVersion", "kind", "resources", "images", "namespace", "namePrefix", "nameSuffix",
    "labels", "commonLabels", "commonAnnotations", "configMapGenerator", "secretGenerator",
    "generatorOptions", "patches", "patchesStrategicMerge", "patchesJson6902", "replicas",
    "components", "crds",
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# fedtrain options that take no value; every other option takes the next word.
FEDTRAIN_SWITCHES = {"--resume", "--resume-if-any", "--help", "--print-config"}
FEDTRAIN_FILE_OPTIONS = {"--config", "--tls-cert", "--tls-key", "--tls-client-ca", "--tls-ca",
                         "--plugin"}
FEDTRAIN_DIR_OPTIONS = {"--out", "--state-dir"}


class Doc:
    def __init__(self, file, index, obj):
        self.file, self.index, self.obj = file, index, obj
        self.kind = obj.get("kind") if isinstance(obj, dict) else None
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        self.name = meta.get("name") if isinstance(meta, dict) else None

    def where(self):
        what = f" ({self.kind} {self.name})" if self.kind else ""
        return f"{self.file}: document {self.index}{what}"


class Report:
    def __init__(self):
        self.errors = []

    def error(self, doc, path, msg):
        where = doc.where() if isinstance(doc, Doc) else doc
        self.errors.append(f"{where}: {path}: {msg}" if path else f"{where}: {msg}")


# ---------------------------------------------------------------------------------------
# Schema: the model classes.

_required_cache = {}
_inverse_cache = {}


def required_fields(cls):
    """Attributes whose setter refuses None under client-side validation."""
    if cls not in _required_cache:
        obj = cls.__new__(cls)
        conf = k8s.Configuration()
        conf.client_side_validation = True
        obj.local_vars_configuration = conf
        req = set()
        for attr in cls.openapi_types:
            try:
                setattr(obj, attr, None)
            except ValueError:
                req.add(attr)
        _required_cache[cls] = req
    return _required_cache[cls]


def yaml_to_attr(cls):
    if cls not in _inverse_cache:
        _inverse_cache[cls] = {v: k for k, v in cls.attribute_map.items()}
    return _inverse_cache[cls]


def type_name(value):
    """'a string', 'an integer', ...: what a parsed YAML value is, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "null"
    return type(value).__name__


def check_value(value, tname, path, doc, rep):
    """Checks `value` (parsed YAML) against an openapi type name of the models."""
    if value is None:
        rep.error(doc, path, f"is null; want {tname}")
        return
    if tname.startswith("list["):
        inner = tname[5:-1]
        if not isinstance(value, list):
            rep.error(doc, path, f"is {type_name(value)}; want a list of {inner}")
            return
        for i, item in enumerate(value):
            check_value(item, inner, f"{path}[{i}]", doc, rep)
        return
    if tname.startswith("dict("):
        inner = tname[5:-1].split(",", 1)[1].strip()
        if not isinstance(value, dict):
            rep.error(doc, path, f"is {type_name(value)}; want a mapping of {inner}")
            return
        for k, v in value.items():
            if not isinstance(k, str):
                rep.error(doc, f"{path}.{k}", f"key is {type_name(k)}; want a string")
            check_value(v, inner, f"{path}.{k}", doc, rep)
        return
    if tname == "str" or tname in ("datetime", "date"):
        if not isinstance(value, str):
            rep.error(doc, path, f"is {type_name(value)} ({value!r}); want a string"
                      + (" (quote it)" if isinstance(value, (int, float, bool)) else ""))
        return
    if tname == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            rep.error(doc, path, f"is {type_name(value)} ({value!r}); want an integer")
        return
    if tname == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            rep.error(doc, path, f"is {type_name(value)} ({value!r}); want a number")
        return
    if tname == "bool":
        if not isinstance(value, bool):
            rep.error(doc, path, f"is {type_name(value)} ({value!r}); want true or false")
        return
    if tname == "object":  # IntOrString, Quantity, RawExtension: any non-null value
        return
    cls = getattr(k8s_models, tname, None)
    if cls is None:
        rep.error(doc, path, f"internal: no model class {tname}")
        return
    check_model(value, cls, path, doc, rep)


def check_model(value, cls, path, doc, rep):
    if not isinstance(value, dict):
        rep.error(doc, path, f"is {type_name(value)}; want a mapping ({cls.__name__})")
        return
    names = yaml_to_attr(cls)
    for key, v in value.items():
        sub = f"{path}.{key}" if path else str(key)
        attr = names.get(key)
        if attr is None:
            close = [n for n in names if n.lower() == str(key).lower()]
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            rep.error(doc, sub, f"unknown field in {cls.__name__}{hint}")
            continue
        if (cls.__name__, attr) in QUANTITY_MAPS and isinstance(v, dict):
            for rk, rv in v.items():
                if isinstance(rv, bool) or not isinstance(rv, (str, int, float)) \
                        or not QUANTITY.match(str(rv)):
                    rep.error(doc, f"{sub}.{rk}", f"{rv!r} is not a quantity (e.g. 500m, 2, 1Gi)")
            continue
        check_value(v, cls.openapi_types[attr], sub, doc, rep)
        allowed = ENUMS.get((cls.__name__, attr))
        if allowed is not None:
            for item in (v if isinstance(v, list) else [v]):
                if isinstance(item, str) and item not in allowed:
                    rep.error(doc, sub, f"'{item}' is not one of {', '.join(sorted(allowed))}")
    for attr in sorted(required_fields(cls)):
        if cls.attribute_map[attr] not in value:
            rep.error(doc, f"{path}.{cls.attribute_map[attr]}" if path else cls.attribute_map[attr],
                      f"required field of {cls.__name__} is missing")


def model_for(doc, rep):
    """The model class of a document's apiVersion/kind, or None (error reported)."""
    obj = doc.obj
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        rep.error(doc, "", "apiVersion and kind must be strings")
        return None
    group, _, version = api_version.rpartition("/")
    cls = getattr(k8s_models, version.capitalize() + kind, None)
    api = "".join(p.capitalize() for p in (group or "core").replace(".k8s.io", "").split("."))
    api_cls = getattr(k8s, f"{api}{version.capitalize()}Api", None)
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()
    served = api_cls is not None and (hasattr(api_cls, f"create_namespaced_{snake}")
                                      or hasattr(api_cls, f"create_{snake}"))
    if cls is None or not served:
        rep.error(doc, "kind", f"no resource {kind} in API {api_version} "
                  f"(python3-kubernetes {kubernetes.__version__})")
        return None
    return cls


def check_names(doc, rep):
    """Name syntax the models leave to the API server."""
    obj = doc.obj
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        rep.error(doc, "metadata.name", "every object needs a name")
    elif not DNS_SUBDOMAIN.match(meta["name"]) or len(meta["name"]) > 253:
        rep.error(doc, "metadata.name", f"'{meta['name']}' is not a DNS-1123 subdomain")
    elif doc.kind in ("Service", "StatefulSet") and not DNS_LABEL.match(meta["name"]):
        rep.error(doc, "metadata.name", f"'{meta['name']}' is not a DNS-1123 label")
    if isinstance(meta, dict) and "namespace" in meta:
        rep.error(doc, "metadata.namespace", "the manifests are namespace-free: "
                  "set the namespace in kustomization.yaml or with kubectl -n")

    def labels(m, path):
        if isinstance(m, dict) and isinstance(m.get("labels"), dict):
            for k, v in m["labels"].items():
                if not isinstance(v, str) or not LABEL_VALUE.match(v) or len(v) > 63:
                    rep.error(doc, f"{path}.labels.{k}", f"{v!r} is not a valid label value")
    labels(meta, "metadata")
    for pod_path, pod in pod_specs(doc):
        if pod_path != "spec":
            labels(dig(doc.obj, template_meta_path(pod_path)), template_meta_path(pod_path))
        for cpath, c in containers(pod, pod_path):
            if isinstance(c.get("name"), str) and not DNS_LABEL.match(c["name"]):
                rep.error(doc, f"{cpath}.name", f"'{c['name']}' is not a DNS-1123 label")
            for i, p in enumerate(as_list(c.get("ports"))):
                n = p.get("name") if isinstance(p, dict) else None
                if isinstance(n, str) and (len(n) > 15 or not PORT_NAME.match(n)
                                           or "--" in n or not re.search("[a-z]", n)):
                    rep.error(doc, f"{cpath}.ports[{i}].name",
                              f"'{n}' is not a valid port name (IANA_SVC_NAME)")
        for i, v in enumerate(as_list(pod.get("volumes"))):
            if isinstance(v, dict) and isinstance(v.get("name"), str) and not DNS_LABEL.match(v["name"]):
                rep.error(doc, f"{pod_path}.volumes[{i}].name", f"'{v['name']}' is not a DNS-1123 label")
    if doc.kind == "Secret":
        for k, v in (obj.get("data") or {}).items() if isinstance(obj.get("data"), dict) else []:
            if isinstance(v, str):
                try:
                    base64.b64decode(v, validate=True)
                except binascii.Error:
                    rep.error(doc, f"data.{k}", "is not base64 (use stringData for plain text)")


# ---------------------------------------------------------------------------------------
# Helpers over raw documents.

def as_list(v):
    return v if isinstance(v, list) else []


def as_dict(v):
    return v if isinstance(v, dict) else {}


def dig(obj, path):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def pod_specs(doc):
    """(path, pod spec) of the pod templates of a workload document."""
    if doc.kind in WORKLOAD_KINDS:
        spec = dig(doc.obj, "spec.template.spec")
        if isinstance(spec, dict):
            return [("spec.template.spec", spec)]
    if doc.kind == "Pod" and isinstance(doc.obj.get("spec"), dict):
        return [("spec", doc.obj["spec"])]
    return []


def template_meta_path(pod_path):
    """Where the metadata of the pod whose spec is at pod_path lives."""
    return "metadata" if pod_path == "spec" else pod_path[:-len(".spec")] + ".metadata"


def pod_labels(doc, pod_path):
    return as_dict(as_dict(dig(doc.obj, template_meta_path(pod_path))).get("labels"))


def containers(pod, pod_path):
    out = []
    for field in ("initContainers", "containers"):
        for i, c in enumerate(as_list(pod.get(field))):
            if isinstance(c, dict):
                out.append((f"{pod_path}.{field}[{i}]", c))
    return out


def port_matches(ref, container_ports):
    """Does a port reference (number or name) name one of the container ports?"""
    for p in container_ports:
        if not isinstance(p, dict):
            continue
        if isinstance(ref, int) and p.get("containerPort") == ref:
            return True
        if isinstance(ref, str) and p.get("name") == ref:
            return True
    return False


def resolve_port(ref, container_ports):
    """The port number a reference (number or name) stands for, or None."""
    if isinstance(ref, int):
        return ref
    for p in container_ports:
        if isinstance(p, dict) and p.get("name") == ref:
            return p.get("containerPort")
    return None


# ---------------------------------------------------------------------------------------
# References between documents.

class Index:
    def __init__(self, docs):
        self.by_kind = {}
        for d in docs:
            if d.kind and isinstance(d.name, str):
                self.by_kind.setdefault(d.kind, {})
                self.by_kind[d.kind].setdefault(d.name, d)

    def get(self, kind, name):
        return self.by_kind.get(kind, {}).get(name)

    def keys(self, kind, name):
        d = self.get(kind, name)
        if d is None:
            return None
        fields = ("data", "stringData") if kind == "Secret" else ("data", "binaryData")
        keys = set()
        for f in fields:
            keys |= set(as_dict(d.obj.get(f)).keys())
        return keys


def check_object_key(doc, path, rep, idx, kind, name, key, optional, prefix=""):
    """The Secret/ConfigMap `name` is in the manifests, with `key` unless key is None."""
    if optional is True:
        return
    keys = idx.keys(kind, name)
    if keys is None:
        rep.error(doc, path, f"{prefix}no {kind} '{name}' in the manifests")
    elif key is not None and key not in keys:
        rep.error(doc, path, f"{prefix}{kind} '{name}' has no key '{key}' "
                  f"(it has: {', '.join(sorted(keys)) or 'none'})")


def check_pod_refs(doc, pod_path, pod, rep, idx):
    claim_templates = set()
    if doc.kind == "StatefulSet":
        for t in as_list(dig(doc.obj, "spec.volumeClaimTemplates")):
            n = as_dict(as_dict(t).get("metadata")).get("name")
            if isinstance(n, str):
                claim_templates.add(n)
    volumes = {}
    for i, v in enumerate(as_list(pod.get("volumes"))):
        if not isinstance(v, dict):
            continue
        vpath = f"{pod_path}.volumes[{i}]"
        name = v.get("name")
        if name in volumes:
            rep.error(doc, f"{vpath}.name", f"volume '{name}' declared twice")
        if name in claim_templates:
            rep.error(doc, f"{vpath}.name", f"volume '{name}' is also a volumeClaimTemplate")
        volumes[name] = v
        # Secret and ConfigMap volumes: the object, and every key an item names, must exist.
        for field, name_field, kind in (("secret", "secretName", "Secret"),
                                        ("configMap", "name", "ConfigMap")):
            src = v.get(field)
            if not isinstance(src, dict):
                continue
            check_object_key(doc, f"{vpath}.{field}.{name_field}", rep, idx, kind,
                             src.get(name_field), None, src.get("optional"))
            for j, it in enumerate(as_list(src.get("items"))):
                check_object_key(doc, f"{vpath}.{field}.items[{j}].key", rep, idx, kind,
                                 src.get(name_field), as_dict(it).get("key"), src.get("optional"))
        pvc = v.get("persistentVolumeClaim")
        if isinstance(pvc, dict) and idx.get("PersistentVolumeClaim", pvc.get("claimName")) is None:
            rep.error(doc, f"{vpath}.persistentVolumeClaim.claimName",
                      f"no PersistentVolumeClaim '{pvc.get('claimName')}' in the manifests")
    seen = set()
    for cpath, c in containers(pod, pod_path):
        if c.get("name") in seen:
            rep.error(doc, f"{cpath}.name", f"container name '{c.get('name')}' used twice")
        seen.add(c.get("name"))
        for i, m in enumerate(as_list(c.get("volumeMounts"))):
            n = as_dict(m).get("name")
            if n not in volumes and n not in claim_templates:
                declared = sorted(set(volumes) | claim_templates)
                rep.error(doc, f"{cpath}.volumeMounts[{i}].name",
                          f"no volume '{n}' in the pod (declared: {', '.join(map(str, declared)) or 'none'})")
        for i, e in enumerate(as_list(c.get("env"))):
            vf = as_dict(as_dict(e).get("valueFrom"))
            epath = f"{cpath}.env[{i}].valueFrom"
            for field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                ref = vf.get(field)
                if isinstance(ref, dict):
                    check_object_key(doc, f"{epath}.{field}", rep, idx, kind, ref.get("name"),
                                     ref.get("key"), ref.get("optional"))
        for i, e in enumerate(as_list(c.get("envFrom"))):
            for field, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                ref = as_dict(e).get(field)
                if isinstance(ref, dict):
                    check_object_key(doc, f"{cpath}.envFrom[{i}].{field}.name", rep, idx, kind,
                                     ref.get("name"), None, ref.get("optional"))
        ports = as_list(c.get("ports"))
        names = [as_dict(p).get("name") for p in ports if as_dict(p).get("name")]
        if len(names) != len(set(names)):
            rep.error(doc, f"{cpath}.ports", "port names must be unique in a container")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            pr = as_dict(c.get(probe))
            for action in ("tcpSocket", "httpGet"):
                if isinstance(pr.get(action), dict) and "port" in pr[action]:
                    ref = pr[action]["port"]
                    if not port_matches(ref, ports):
                        rep.error(doc, f"{cpath}.{probe}.{action}.port",
                                  f"{ref!r} is not a port of container '{c.get('name')}'")


def check_references(docs, rep):
    idx = Index(docs)
    seen = {}
    for d in docs:
        key = (d.kind, d.name)
        if d.kind and d.name and key in seen:
            rep.error(d, "metadata.name", f"{d.kind} '{d.name}' is also defined in {seen[key].where()}")
        seen.setdefault(key, d)

    templates = []  # (doc, pod_path, pod, labels)
    for d in docs:
        for pod_path, pod in pod_specs(d):
            labels = pod_labels(d, pod_path)
            templates.append((d, pod_path, pod, labels))
            check_pod_refs(d, pod_path, pod, rep, idx)
            if d.kind in WORKLOAD_KINDS:
                sel = as_dict(dig(d.obj, "spec.selector.matchLabels"))
                for k, v in sel.items():
                    if labels.get(k) != v:
                        rep.error(d, f"spec.selector.matchLabels.{k}",
                                  f"'{v}' does not match the pod template's labels ({labels.get(k)!r})")
            if d.kind == "StatefulSet":
                sn = dig(d.obj, "spec.serviceName")
                svc = idx.get("Service", sn)
                if svc is None:
                    rep.error(d, "spec.serviceName", f"no Service '{sn}' in the manifests")
                elif dig(svc.obj, "spec.clusterIP") != "None":
                    rep.error(d, "spec.serviceName", f"Service '{sn}' must be headless (clusterIP: None)")

    for d in docs:
        if d.kind != "Service":
            continue
        sel = dig(d.obj, "spec.selector")
        if not isinstance(sel, dict) or not sel:
            continue
        matched = [t for t in templates if all(t[3].get(k) == v for k, v in sel.items())]
        if not matched:
            rep.error(d, "spec.selector", f"selects no pod template in the manifests ({sel})")
            continue
        for i, p in enumerate(as_list(dig(d.obj, "spec.ports"))):
            p = as_dict(p)
            target = p.get("targetPort", p.get("port"))
            for (td, pod_path, pod, _) in matched:
                ports = [q for _, c in containers(pod, pod_path) for q in as_list(c.get("ports"))]
                if not port_matches(target, ports):
                    rep.error(d, f"spec.ports[{i}].targetPort",
                              f"{target!r} is not a container port of the pods of {td.kind} {td.name}")
    return idx, templates


# ---------------------------------------------------------------------------------------
# fedtrain command lines.

def fedtrain_argv(c):
    """The words after `fedtrain` of a container's command, or None if it runs no fedtrain.
    The image's ENTRYPOINT is fedtrain (deploy/Dockerfile), so `args` alone are its argv."""
    cmd, args = c.get("command"), c.get("args")
    cmd = [str(x) for x in as_list(cmd)]
    args = [str(x) for x in as_list(args)]
    if not cmd:
        return args
    if posixpath.basename(cmd[0]) in ("sh", "bash") and "-c" in cmd:
        rest = cmd[cmd.index("-c") + 1:] + args
        words = shlex.split(rest[0]) if rest else []
    else:
        words = cmd + args
    for i, w in enumerate(words):
        if posixpath.basename(w) == "fedtrain":
            return words[i + 1:]
    return None


def parse_options(argv, doc, path, rep):
    opts, pos = {}, []
    i = 0
    while i < len(argv):
        w = argv[i]
        if w.startswith("--"):
            if "=" in w:
                rep.error(doc, path, f"'{w}': fedtrain takes an option's value as the next word")
                i += 1
                continue
            if w in FEDTRAIN_SWITCHES:
                opts.setdefault(w, []).append(True)
                i += 1
                continue
            if i + 1 >= len(argv):
                rep.error(doc, path, f"option {w} has no value")
                break
            opts.setdefault(w, []).append(argv[i + 1])
            i += 2
        else:
            pos.append(w)
            i += 1
    return pos, opts


def mount_for(c, pod, claim_templates, file_path):
    """(mount, volume) of the longest mountPath holding file_path, or (None, None)."""
    best = (None, None)
    for m in as_list(c.get("volumeMounts")):
        mp = as_dict(m).get("mountPath")
        if not isinstance(mp, str):
            continue
        mp = mp.rstrip("/") or "/"
        if file_path == mp or file_path.startswith(mp + "/"):
            if best[0] is None or len(mp) > len(best[0]["mountPath"].rstrip("/")):
                vol = next((v for v in as_list(pod.get("volumes")) if as_dict(v).get("name") == m.get("name")), None)
                if vol is None and m.get("name") in claim_templates:
                    vol = {"name": m.get("name"), "persistentVolumeClaim": {}}
                best = (m, vol)
    return best


def check_fedtrain(docs, idx, templates, rep):
    runs = []  # dict(doc, cpath, c, pod, pod_path, sub, opts, replicas, labels)
    for (d, pod_path, pod, labels) in templates:
        claim_templates = {as_dict(as_dict(t).get("metadata")).get("name")
                           for t in as_list(dig(d.obj, "spec.volumeClaimTemplates"))}
        for cpath, c in containers(pod, pod_path):
            argv = fedtrain_argv(c)
            if not argv:
                continue
            apath = f"{cpath}.args" if "args" in c else f"{cpath}.command"
            pos, opts = parse_options(argv, d, apath, rep)
            sub = pos[0] if pos else None
            if sub not in ("server", "worker"):
                continue
            replicas = dig(d.obj, "spec.replicas")
            runs.append(dict(doc=d, cpath=cpath, apath=apath, c=c, pod=pod, sub=sub, opts=opts,
                             replicas=1 if replicas is None else replicas, labels=labels,
                             claims=claim_templates))
            if "--token" in opts:
                rep.error(d, apath, "--token on the command line shows the token in the pod spec: "
                          "take FEDTRAIN_TOKEN from a Secret")
            # Files the options name must come from a mounted volume's key.
            for opt in sorted(FEDTRAIN_FILE_OPTIONS | FEDTRAIN_DIR_OPTIONS):
                for val in opts.get(opt, []):
                    if not isinstance(val, str) or "$" in val:
                        continue
                    if not val.startswith("/"):
                        rep.error(d, apath, f"{opt} {val}: use an absolute path")
                        continue
                    m, vol = mount_for(c, pod, claim_templates, posixpath.normpath(val))
                    if m is None:
                        what = "is not in the image" if opt in FEDTRAIN_FILE_OPTIONS else \
                            "would be written into the container and lost on restart"
                        rep.error(d, apath, f"{opt} {val}: no volume is mounted there; it {what}")
                        continue
                    if opt in FEDTRAIN_DIR_OPTIONS:
                        if m.get("readOnly") or (vol and ("secret" in vol or "configMap" in vol)):
                            rep.error(d, apath, f"{opt} {val}: volume '{m.get('name')}' is read-only")
                        continue
                    for kind, field, name_field in (("Secret", "secret", "secretName"),
                                                    ("ConfigMap", "configMap", "name")):
                        src = as_dict(vol).get(field) if vol else None
                        if not isinstance(src, dict):
                            continue
                        rel = posixpath.relpath(posixpath.normpath(val), m["mountPath"].rstrip("/") or "/")
                        items = as_list(src.get("items"))
                        if items:
                            keys = {as_dict(it).get("path"): as_dict(it).get("key") for it in items}
                            if rel not in keys:
                                rep.error(d, apath, f"{opt} {val}: volume '{m.get('name')}' projects no "
                                          f"file '{rel}' (items: {', '.join(map(str, keys))})")
                        else:
                            check_object_key(d, apath, rep, idx, kind, src.get(name_field), rel,
                                             src.get("optional"), prefix=f"{opt} {val}: ")

            # The token: from FEDTRAIN_TOKEN.
            tok = next((e for e in as_list(c.get("env")) if as_dict(e).get("name") == "FEDTRAIN_TOKEN"), None)
            if tok is None and "--token" not in opts:
                rep.error(d, f"{cpath}.env", "no FEDTRAIN_TOKEN (fedtrain needs the run's token)")
            runs[-1]["token"] = json.dumps(as_dict(tok).get("valueFrom"), sort_keys=True) if tok else None

    servers = [r for r in runs if r["sub"] == "server"]
    workers = [r for r in runs if r["sub"] == "worker"]
    if not servers or not workers:
        if docs:
            rep.error(docs[0].file, "", "want one `fedtrain server` and `fedtrain worker` pods "
                      f"(found {len(servers)} server and {len(workers)} worker containers)")
        return
    n_workers = sum(r["replicas"] for r in workers if isinstance(r["replicas"], int))
    for s in servers:
        d = s["doc"]
        if s["replicas"] != 1:
            rep.error(d, "spec.replicas", f"is {s['replicas']}; a run has exactly one server")
        w = s["opts"].get("--workers", [None])[-1]
        if w is None:
            rep.error(d, s["apath"], "fedtrain server needs --workers")
        elif not re.fullmatch(r"[0-9]+", w) or int(w) != n_workers:
            rep.error(d, s["apath"], f"--workers {w} but the worker pods have {n_workers} replicas "
                      f"({', '.join(r['doc'].kind + ' ' + str(r['doc'].name) for r in workers)})")
        listen = s["opts"].get("--listen", ["0.0.0.0:50051"])[-1]
        s["port"] = int(listen.rsplit(":", 1)[1]) if re.fullmatch(r".*:[0-9]+", listen) else None
        if s["port"] is None or not any(as_dict(p).get("containerPort") == s["port"]
                                        for p in as_list(s["c"].get("ports"))):
            rep.error(d, s["apath"], f"--listen {listen}: the container declares no such port")
    for w in workers:
        d = w["doc"]
        target = w["opts"].get("--server", [None])[-1]
        m = re.fullmatch(r"([^:/]+):([0-9]+)", target or "")
        if not m:
            rep.error(d, w["apath"], f"--server {target}: want SERVICE:PORT")
            continue
        host, port = m.group(1).split(".")[0], int(m.group(2))
        svc = idx.get("Service", host)
        if svc is None:
            rep.error(d, w["apath"], f"--server {target}: no Service '{host}' in the manifests")
            continue
        sel = as_dict(dig(svc.obj, "spec.selector"))
        reached = [s for s in servers if sel and all(s["labels"].get(k) == v for k, v in sel.items())]
        if not reached:
            rep.error(d, w["apath"], f"--server {target}: Service '{host}' does not select the server pod")
            continue
        sport = next((as_dict(p) for p in as_list(dig(svc.obj, "spec.ports"))
                      if as_dict(p).get("port") == port), None)
        if sport is None:
            rep.error(d, w["apath"], f"--server {target}: Service '{host}' has no port {port}")
            continue
        for s in reached:
            tp = resolve_port(sport.get("targetPort", sport.get("port")), as_list(s["c"].get("ports")))
            if s.get("port") is not None and tp != s["port"]:
                rep.error(d, w["apath"], f"--server {target}: Service '{host}' port {port} leads to "
                          f"container port {tp}, the server listens on {s['port']}")
            so, wo = s["opts"], w["opts"]
            if "--tls-cert" in so and "--tls-ca" not in wo:
                rep.error(d, w["apath"], "the server serves TLS (--tls-cert): the worker needs --tls-ca")
            if "--tls-cert" not in so and "--tls-ca" in wo:
                rep.error(d, w["apath"], "--tls-ca but the server serves no TLS (no --tls-cert)")
            if "--tls-client-ca" in so and not ("--tls-cert" in wo and "--tls-key" in wo):
                rep.error(d, w["apath"], "the server requires client certificates (--tls-client-ca): "
                          "the worker needs --tls-cert and --tls-key")
            if s.get("token") and w.get("token") and s["token"] != w["token"]:
                rep.error(d, f"{w['cpath']}.env", "FEDTRAIN_TOKEN comes from another source than the "
                          f"server's ({s['token']} vs {w['token']})")


# ---------------------------------------------------------------------------------------

def check_kustomization(directory, rep):
    """Checks kustomization.yaml; returns the resource files and the images it lists."""
    path = os.path.join(directory, "kustomization.yaml")
    name = "kustomization.yaml"
    if not os.path.isfile(path):
        rep.error(directory, "", "no kustomization.yaml")
        return [], []
    try:
        with open(path) as f:
            k = yaml.safe_load(f)
    except yaml.YAMLError as e:
        rep.error(name, "", f"not YAML: {e}")
        return [], []
    if not isinstance(k, dict):
        rep.error(name, "", "is not a mapping")
        return [], []
    for key in k:
        if key not in KUSTOMIZATION_KEYS:
            rep.error(name, key, "unknown kustomization field")
    if k.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or k.get("kind") != "Kustomization":
        rep.error(name, "apiVersion", "want apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization")
    if "namespace" in k:
        rep.error(name, "namespace", "the manifests are namespace-free: choose it with kubectl -n")
    files = []
    for i, r in enumerate(as_list(k.get("resources"))):
        if not isinstance(r, str) or "/" in r or not os.path.isfile(os.path.join(directory, r)):
            rep.error(name, f"resources[{i}]", f"{r!r} is not a file in {directory}")
        else:
            files.append(r)
    for f in sorted(os.listdir(directory)):
        if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml" and f not in files:
            rep.error(name, "resources", f"{f} is not listed (kubectl apply -k would skip it)")
    return files, as_list(k.get("images"))


def image_name(image):
    """The image reference without tag or digest: registry.example.org:5000/a/b:1 -> .../a/b."""
    image = image.split("@", 1)[0]
    head, _, last = image.rpartition("/")
    last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last


def check_images(images, docs, rep):
    used = set()
    for d in docs:
        for pod_path, pod in pod_specs(d):
            for _, c in containers(pod, pod_path):
                if isinstance(c.get("image"), str):
                    used.add(image_name(c["image"]))
    for i, im in enumerate(images):
        im = as_dict(im)
        for key in im:
            if key not in ("name", "newName", "newTag", "digest"):
                rep.error("kustomization.yaml", f"images[{i}].{key}", "unknown field")
            elif not isinstance(im[key], str):
                rep.error("kustomization.yaml", f"images[{i}].{key}",
                          f"is {type_name(im[key])} ({im[key]!r}); want a string (quote it)")
        if im.get("name") not in used:
            rep.error("kustomization.yaml", f"images[{i}].name",
                      f"{im.get('name')!r} is no container's image ({', '.join(sorted(used))})")


def load(directory, files, rep):
    docs = []
    for f in files:
        try:
            with open(os.path.join(directory, f)) as fh:
                loaded = list(yaml.safe_load_all(fh))
        except yaml.YAMLError as e:
            rep.error(f, "", f"not YAML: {e}")
            continue
        for i, obj in enumerate(loaded, start=1):
            if obj is None:
                continue
            d = Doc(f, i, obj)
            if not isinstance(obj, dict):
                rep.error(d, "", "is not a mapping")
                continue
            docs.append(d)
    return docs


def main():
    ap = argparse.ArgumentParser(
        prog=PROG, description="Offline check of fedtrain's Kubernetes manifests.",
        usage="/usr/bin/python3 deploy/k8s/validate.py [--print-config-key CONFIGMAP KEY] [DIR]")
    ap.add_argument("dir", nargs="?", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--print-config-key", nargs=2, metavar=("CONFIGMAP", "KEY"),
                    help="print a ConfigMap's value after the checks pass")
    a = ap.parse_args()
    if not os.path.isdir(a.dir):
        print(f"{PROG}: {a.dir} is not a folder", file=sys.stderr)
        return 2

    rep = Report()
    files, images = check_kustomization(a.dir, rep)
    docs = load(a.dir, files, rep)
    for d in docs:
        cls = model_for(d, rep)
        if cls is not None:
            check_model(d.obj, cls, "", d, rep)
            if "status" in d.obj:
                rep.error(d, "status", "is written by the cluster, not by manifests")
        check_names(d, rep)
    idx, templates = check_references(docs, rep)
    check_fedtrain(docs, idx, templates, rep)
    check_images(images, docs, rep)
    for d in docs:
        if d.kind == "ConfigMap":
            for k, v in as_dict(d.obj.get("data")).items():
                if k.endswith(".json") and isinstance(v, str):
                    try:
                        json.loads(v)
                    except ValueError as e:
                        rep.error(d, f"data.{k}", f"is not JSON: {e}")

    if rep.errors:
        for e in rep.errors:
            print(f"{PROG}: {e}", file=sys.stderr)
        print(f"{PROG}: {len(rep.errors)} error(s) in {a.dir}", file=sys.stderr)
        return 1
    if a.print_config_key:
        name, key = a.print_config_key
        cm = idx.get("ConfigMap", name)
        if cm is None or key not in as_dict(cm.obj.get("data")):
            print(f"{PROG}: no ConfigMap {name} with key {key}", file=sys.stderr)
            return 1
        sys.stdout.write(cm.obj["data"][key])
        return 0
    print(f"{PROG}: {len(docs)} documents in {len(files)} files OK "
          f"(python3-kubernetes {kubernetes.__version__} models)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
