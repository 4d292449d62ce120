"""The Kubernetes manifests: the properties a platform team relies on, so none silently regress.

The base's files are plain YAML (no generators, no patches), so they are read
as they are; kubectl, when present, proves that kustomize renders the same.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from service.keyfile import read_key_file
from service.settings import Settings
from tests.test_deploy_dockerfile import exposed_port, image_uid, serve_arguments

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
BASE = K8S / "base"
DEV = K8S / "overlays" / "dev"
OLDEST_KUBERNETES = "1.29.0"
POD_LABELS = {"app.kubernetes.io/name": "slotlock"}
REDIS_PORTS = {6379, 6380, 26379}
# Something that looks like a credential: an API key, or a URL with a password in it.
SECRET_LOOKING = re.compile(r"\b[ps]k_[0-9a-f]{64}\b|rediss?(\+\w+)?://[^/\s@]*:[^/\s@]+@")

Document = dict[str, Any]


def load_documents(path: Path) -> list[Document]:
    """The non-empty YAML documents of a file."""
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def resource_files(directory: Path) -> list[Path]:
    """The files a kustomization lists under `resources`, following directories."""
    kustomization = load_documents(directory / "kustomization.yaml")[0]
    found: list[Path] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        found.extend(resource_files(path) if path.is_dir() else [path])
    return found


def documents_of(directory: Path) -> list[Document]:
    """Every resource a kustomization lists, as written (no kustomize run)."""
    return [document for path in resource_files(directory) for document in load_documents(path)]


def the(documents: list[Document], kind: str, name: str | None = None) -> Document:
    """The one document of this kind (and name)."""
    found = [
        document
        for document in documents
        if document["kind"] == kind and name in (None, document["metadata"]["name"])
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def base() -> list[Document]:
    """The base's resources."""
    return documents_of(K8S)


@pytest.fixture(scope="module")
def pod(base: list[Document]) -> Document:
    """The Deployment's pod spec."""
    spec: Document = the(base, "Deployment")["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def container(pod: Document) -> Document:
    """The slotlock container."""
    (only,) = pod["containers"]
    found: Document = only
    return found


def probe_path(container: Document, probe: str) -> str:
    """The HTTP path a probe asks, checking it goes to the named HTTP port."""
    action = container[probe]["httpGet"]
    assert action["port"] in ("http", exposed_port())
    path: str = action["path"]
    return path


def assert_restricted(pod: Document) -> None:
    """The Pod Security Standard "restricted", plus a read-only root, for every container."""
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod.get("automountServiceAccountToken") is False
    for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(host_namespace)
    for container in pod["containers"] + pod.get("initContainers", []):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["readOnlyRootFilesystem"] is True
        assert not context.get("privileged")
        assert context.get("runAsNonRoot", True) is True
        assert context.get("runAsUser", pod["securityContext"].get("runAsUser")) != 0


def test_every_manifest_file_is_listed() -> None:
    """Each YAML file under k8s/ is part of the base or of an overlay, so none is dead."""
    listed = set(resource_files(K8S))
    for overlay in (K8S / "overlays").iterdir():
        listed |= set(resource_files(overlay))
    on_disk = {path for path in K8S.rglob("*.yaml") if path.name != "kustomization.yaml"}
    assert on_disk == listed


def test_base_holds_the_expected_objects(base: list[Document]) -> None:
    """The base is the service and its guards, and carries no Secret and no Redis."""
    kinds = sorted(f"{doc['apiVersion']} {doc['kind']}" for doc in base)
    assert kinds == [
        "apps/v1 Deployment",
        "autoscaling/v2 HorizontalPodAutoscaler",
        "networking.k8s.io/v1 NetworkPolicy",
        "policy/v1 PodDisruptionBudget",
        "v1 ConfigMap",
        "v1 Service",
        "v1 ServiceAccount",
    ]
    assert all("namespace" not in doc["metadata"] for doc in base)


def test_deployment_runs_three_replicas_without_downtime(base: list[Document]) -> None:
    """Three replicas, rolled one extra pod at a time with none taken away first."""
    spec = the(base, "Deployment")["spec"]
    assert spec["replicas"] == 3
    assert spec["selector"]["matchLabels"] == POD_LABELS
    assert POD_LABELS.items() <= spec["template"]["metadata"]["labels"].items()
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_container_runs_the_image_cmd_on_its_port(container: Document) -> None:
    """No command or args override the tested CMD; the container port is the EXPOSEd one."""
    assert "command" not in container
    assert "args" not in container
    assert container["ports"] == [
        {"name": "http", "containerPort": exposed_port(), "protocol": "TCP"}
    ]


def test_probes_start_on_healthz_ready_on_readyz_alive_on_healthz(container: Document) -> None:
    """Startup and liveness ask /healthz (never Redis), readiness asks /readyz."""
    assert probe_path(container, "startupProbe") == "/healthz"
    assert probe_path(container, "readinessProbe") == "/readyz"
    assert probe_path(container, "livenessProbe") == "/healthz"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 10


def test_resources_request_cpu_and_memory_and_limit_memory(container: Document) -> None:
    """CPU and memory are requested (the HPA needs the CPU request) and memory is capped."""
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_pod_meets_the_restricted_security_standard(pod: Document, container: Document) -> None:
    """runAsNonRoot as the image's uid, read-only root, no escalation or capabilities, seccomp."""
    assert_restricted(pod)
    assert pod["securityContext"]["runAsUser"] == image_uid()
    assert container["securityContext"]["runAsUser"] == image_uid()
    assert pod["enableServiceLinks"] is False  # no SLOTLOCK_*_PORT variables from Services


def test_tmp_is_a_small_emptydir(pod: Document, container: Document) -> None:
    """The read-only root gets a size-limited emptyDir at /tmp and no other writable mount."""
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    writable = [mount for mount in container["volumeMounts"] if not mount.get("readOnly")]
    assert [mount["mountPath"] for mount in writable] == ["/tmp"]
    assert "sizeLimit" in volumes[writable[0]["name"]]["emptyDir"]


def test_pods_spread_over_zones_and_nodes(pod: Document) -> None:
    """Topology spread constraints cover zones and nodes and select this app's pods."""
    constraints = pod["topologySpreadConstraints"]
    assert {each["topologyKey"] for each in constraints} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    for each in constraints:
        assert each["labelSelector"]["matchLabels"] == POD_LABELS
        assert each["maxSkew"] == 1


def test_grace_period_covers_pre_stop_sleep_and_graceful_timeout(
    pod: Document, container: Document
) -> None:
    """terminationGracePeriodSeconds exceeds the preStop sleep plus uvicorn's graceful timeout."""
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop_s = float(command[1])
    graceful_timeout_s = serve_arguments()["graceful_timeout"]
    assert isinstance(graceful_timeout_s, float)
    assert pre_stop_s >= 5
    assert pod["terminationGracePeriodSeconds"] > pre_stop_s + graceful_timeout_s


def test_settings_come_from_a_configmap_the_service_accepts(
    base: list[Document], container: Document
) -> None:
    """The ConfigMap holds only known SLOTLOCK_* settings, with values Settings accepts."""
    config = the(base, "ConfigMap")
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    data = config["data"]
    known = set(re.findall(r'"(SLOTLOCK_[A-Z0-9_]+)"', _service_source()))
    assert set(data) <= known - {"SLOTLOCK_KEYS_FILE", "SLOTLOCK_SENTINEL_PASSWORD"}
    Settings.from_env(data)


def _service_source() -> str:
    return "\n".join(path.read_text() for path in (ROOT / "service").rglob("*.py"))


def test_redis_url_comes_from_a_required_secret(container: Document) -> None:
    """REDIS_URL is a non-optional secretKeyRef: no pod starts on the in-memory fallback."""
    env = {each["name"]: each for each in container["env"]}
    reference = env["REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": "slotlock-redis", "key": "REDIS_URL"}
    for name, each in env.items():
        if re.search(r"URL|PASSWORD|SECRET|TOKEN", name):
            assert "value" not in each, f"{name} is inlined"


def test_api_keys_load_from_a_mounted_secret(pod: Document, container: Document) -> None:
    """SLOTLOCK_KEYS_FILE names keys.json inside a read-only mount of the api-keys Secret."""
    env = {each["name"]: each.get("value") for each in container["env"]}
    keys_file = Path(env["SLOTLOCK_KEYS_FILE"])
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    volume = next(v for v in pod["volumes"] if v["name"] in mounts and "secret" in v)
    mount = mounts[volume["name"]]
    assert mount["readOnly"] is True
    assert keys_file.parent == Path(mount["mountPath"])
    assert volume["secret"]["secretName"] == "slotlock-api-keys"
    assert {"key": "keys.json", "path": keys_file.name} in volume["secret"]["items"]
    assert not volume["secret"].get("optional")
    assert volume["secret"]["defaultMode"] & 0o007 == 0  # not world-readable


def test_nothing_committed_holds_a_credential() -> None:
    """No manifest carries an API key, a password in a URL, or a Secret with data."""
    for path in K8S.rglob("*.yaml"):
        text = path.read_text()
        assert not SECRET_LOOKING.search(text), path
        for document in load_documents(path):
            if document.get("kind") == "Secret":
                assert not document.get("data"), path
                assert not document.get("stringData"), path


def test_prometheus_finds_metrics(container: Document, base: list[Document]) -> None:
    """The pod template announces /metrics on the HTTP port to annotation-based discovery."""
    annotations = the(base, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == exposed_port()


def test_service_is_cluster_ip_on_the_http_port(base: list[Document]) -> None:
    """A ClusterIP Service selects the pods and targets their named HTTP port."""
    spec = the(base, "Service")["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["selector"] == POD_LABELS
    assert [port["targetPort"] for port in spec["ports"]] == ["http"]


def test_hpa_scales_on_cpu_and_scales_down_slowly(base: list[Document]) -> None:
    """An autoscaling/v2 HPA on CPU utilisation, from 3 pods, with a scale-down window."""
    spec = the(base, "HorizontalPodAutoscaler")["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": the(base, "Deployment")["metadata"]["name"],
    }
    assert spec["minReplicas"] == 3 < spec["maxReplicas"]
    (metric,) = spec["metrics"]
    assert metric["type"] == "Resource"
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60


def test_disruption_budget_keeps_most_pods(base: list[Document]) -> None:
    """The PDB selects the pods and lets only one go at a time."""
    spec = the(base, "PodDisruptionBudget")["spec"]
    assert spec["selector"]["matchLabels"] == POD_LABELS
    assert spec["maxUnavailable"] == 1


def test_network_policy_allows_http_in_and_only_redis_and_dns_out(base: list[Document]) -> None:
    """Ingress only on the HTTP port; egress only to Redis ports and DNS, each rule port-bound."""
    spec = the(base, "NetworkPolicy")["spec"]
    assert spec["podSelector"]["matchLabels"] == POD_LABELS
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    ingress_ports = [port for rule in spec["ingress"] for port in rule["ports"]]
    assert ingress_ports == [{"protocol": "TCP", "port": "http"}]
    egress = set()
    for rule in spec["egress"]:
        assert rule.get("ports"), "an egress rule without ports allows everything"
        egress |= {(port["protocol"], port["port"]) for port in rule["ports"]}
    assert egress == {("TCP", port) for port in REDIS_PORTS} | {("UDP", 53), ("TCP", 53)}


def _schema_errors(documents: list[Document], version: str) -> Iterator[str]:
    for document in documents:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except Exception as error:  # validation and missing-schema errors alike
            yield f"{document['kind']}/{document['metadata']['name']}: {error}"


def test_every_resource_passes_the_strict_schema() -> None:
    """Base and overlay files validate strictly against Kubernetes 1.29 and the newest schema."""
    documents = documents_of(K8S) + documents_of(DEV)
    for version in (OLDEST_KUBERNETES, kubernetes_validate.utils.latest_version()):
        assert list(_schema_errors(documents, version)) == []


@pytest.fixture(scope="module")
def dev() -> list[Document]:
    """The dev overlay's own resources (the base's come through ../../base)."""
    return [doc for doc in documents_of(DEV) if doc not in documents_of(K8S)]


def test_dev_overlay_adds_redis_with_aof_on_a_volume_claim(dev: list[Document]) -> None:
    """The dev Redis is one StatefulSet replica, appendonly yes, its --dir on a PVC."""
    redis = the(dev, "StatefulSet", "slotlock-redis")["spec"]
    assert redis["replicas"] == 1
    (container,) = redis["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    data_dir = args[args.index("--dir") + 1]
    (claim,) = redis["volumeClaimTemplates"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == data_dir
    assert_restricted(redis["template"]["spec"])


def test_dev_overlay_points_redis_url_at_its_redis(dev: list[Document]) -> None:
    """The generated REDIS_URL names the dev Redis Service and port; keys start empty."""
    service = the(dev, "Service", "slotlock-redis")
    (port,) = service["spec"]["ports"]
    generators = {
        generator["name"]: generator["literals"]
        for generator in load_documents(DEV / "kustomization.yaml")[0]["secretGenerator"]
    }
    assert generators["slotlock-redis"] == [
        f"REDIS_URL=redis://{service['metadata']['name']}:{port['port']}/0"
    ]
    assert generators["slotlock-api-keys"] == ["keys.json=[]"]
    assert {"protocol": "TCP", "port": port["port"]} in _egress_ports()


def test_dev_key_file_is_one_the_service_reads(tmp_path: Path) -> None:
    """The dev overlay's generated keys.json is a valid, empty key file for SLOTLOCK_KEYS_FILE."""
    generators = load_documents(DEV / "kustomization.yaml")[0]["secretGenerator"]
    (literal,) = next(g["literals"] for g in generators if g["name"] == "slotlock-api-keys")
    name, _, content = literal.partition("=")
    keys_file = tmp_path / name
    keys_file.write_text(content)
    assert read_key_file(keys_file) == []


def _egress_ports() -> list[dict[str, Any]]:
    spec = the(documents_of(K8S), "NetworkPolicy")["spec"]
    return [port for rule in spec["egress"] for port in rule["ports"]]


def test_dev_namespace_enforces_the_restricted_standard(dev: list[Document]) -> None:
    """The dev namespace enforces Pod Security "restricted": a laptop refuses what prod would."""
    labels = the(dev, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def _kustomize(directory: Path) -> list[Document]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert rendered.returncode == 0, rendered.stderr
    return [document for document in yaml.safe_load_all(rendered.stdout) if document]


def test_kustomize_renders_the_base_as_written() -> None:
    """`kubectl kustomize k8s` yields exactly the files' resources, so the tests above hold."""

    def canonical(documents: list[Document]) -> list[str]:
        return sorted(json.dumps(document, sort_keys=True) for document in documents)

    assert canonical(_kustomize(K8S)) == canonical(documents_of(K8S))


def test_kustomize_renders_a_complete_dev_stack() -> None:
    """The dev overlay renders in its namespace with every Secret the Deployment references."""
    rendered = _kustomize(DEV)
    assert list(_schema_errors(rendered, OLDEST_KUBERNETES)) == []
    namespaced = [doc for doc in rendered if doc["kind"] != "Namespace"]
    assert {doc["metadata"]["namespace"] for doc in namespaced} == {"slotlock-dev"}
    secrets = {doc["metadata"]["name"] for doc in rendered if doc["kind"] == "Secret"}
    pod = the(rendered, "Deployment")["spec"]["template"]["spec"]
    referenced = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    for container in pod["containers"]:
        for each in container["env"]:
            reference = each.get("valueFrom", {}).get("secretKeyRef")
            if reference and not reference.get("optional"):
                referenced.add(reference["name"])
    assert referenced
    assert referenced <= secrets
