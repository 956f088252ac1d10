"""The deployment files, checked without a container engine (issue 19):
  - the one package list: scripts/setup.sh reads scripts/packages-debian.txt and lists no package
    itself, and docker/Dockerfile installs through setup.sh (the build stage) and through the list
    derived from the built binary (the runtime stage), naming no other package but its bootstrap;
  - docker/compose.yaml parses: etcd, a frontend, prefill and decode workers, each worker with its
    own GPU, grace periods above the drain timeout;
  - every manifest under deploy/k8s/ parses as Kubernetes objects; the ConfigMap's deployment file
    passes `tandem config check`; worker pods have GPU requests and gRPC health probes, every pod
    a terminationGracePeriodSeconds above shutdown.drain_timeout_s; one HPA per pool;
  - the Grafana dashboard parses and queries only tandem metrics (which ones exist is checked
    against a live /metrics by tests/e2e/deploy/test_drain.py).
"""
import json
import os
import pathlib
import re
import shlex
import subprocess
import tempfile

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy/k8s"
# What the Dockerfile may install besides the shared list: certificates for setup.sh's downloads,
# curl for the health check.
BOOTSTRAP = {"ca-certificates", "curl"}


def package_list():
    names = []
    for line in (ROOT / "scripts/packages-debian.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", line), f"not a package name: {line!r}"
            names.append(line)
    return names


def test_setup_script_installs_the_shared_list():
    names = package_list()
    assert len(names) == len(set(names)), "a package is listed twice"
    assert {"libgrpc++-dev", "etcd-server", "python3-venv"} <= set(names)
    # What setup.sh installs is what it reads from the file, nothing more.
    out = subprocess.run(["bash", "-c", 'ROOT="$1"; source <(sed -n "/^PACKAGES_FILE=/,/^read_packages$/p" '
                          '"$1/scripts/setup.sh"); printf "%s\\n" "${APT_PACKAGES[@]}"', "_", str(ROOT)],
                         check=True, capture_output=True, text=True).stdout.split()
    assert out == names
    # And it installs nothing else: its one apt-get install takes the missing ones of that list.
    setup = (ROOT / "scripts/setup.sh").read_text()
    installs = [line for line in setup.splitlines() if re.search(r"apt-get\s+install", line)]
    assert len(installs) == 1 and installs[0].rstrip().endswith('"${missing[@]}" >/dev/null'), installs
    assert not re.search(r"\blibgrpc\+\+-dev\b", setup), "setup.sh lists packages itself again"


def dockerfile_runs():
    text = (ROOT / "docker/Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip()[4:] for line in text.splitlines() if line.strip().startswith("RUN ")]


def test_dockerfile_uses_the_shared_list():
    runs = dockerfile_runs()
    assert any("./scripts/setup.sh" in r for r in runs), "the build stage must run scripts/setup.sh"
    assert any("scripts/runtime_packages.sh" in r for r in runs), "the runtime list must come from the binary"
    for run in runs:
        for command in re.split(r"&&|;|\|", run):
            words = shlex.split(command)
            if "apt-get" not in words or "install" not in words:
                continue
            named = {w for w in words[words.index("install") + 1:] if not w.startswith("-")}
            assert named <= BOOTSTRAP, f"the Dockerfile installs {sorted(named - BOOTSTRAP)} beside the list"
    text = (ROOT / "docker/Dockerfile").read_text()
    assert re.search(r"^FROM .* AS build$", text, re.M) and re.search(r"^FROM .* AS runtime$", text, re.M)
    assert re.search(r"^USER tandem$", text, re.M), "the runtime image runs as a non-root user"
    assert re.search(r"^HEALTHCHECK ", text, re.M)


def test_compose_file():
    text = (ROOT / "docker/compose.yaml").read_text()
    # Compose interpolates ${NAME...} and takes $$ for a dollar; any other $ (outside comments) is
    # an error there.
    values = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    stray = re.findall(r"\$(?![{$])", re.sub(r"\$\$", "", values))
    assert not stray, "docker/compose.yaml has a $ that is neither ${NAME} nor $$"
    compose = yaml.safe_load(text)
    services = compose["services"]
    assert {"etcd", "frontend"} <= set(services)
    gpus = {}
    for name, service in services.items():
        command = service.get("command", [])
        if command[:1] != ["worker"]:
            continue
        assert any(a.startswith("--role=") for a in command), name
        assert any(a.startswith("--advertise=") for a in command), f"{name}: others must reach it by name"
        assert int(service["stop_grace_period"].rstrip("s")) > 30, f"{name}: grace <= drain_timeout_s"
        if "gpu" in service.get("profiles", []):
            devices = service["deploy"]["resources"]["reservations"]["devices"]
            gpus[name] = devices[0]["device_ids"]
    roles = {n: [a for a in services[n]["command"] if a.startswith("--role=")][0] for n in gpus}
    assert sorted(set(roles.values())) == ["--role=decode", "--role=prefill"], roles
    ids = [i for ids in gpus.values() for i in ids]
    assert len(ids) == len(set(ids)), f"two workers share a GPU: {gpus}"


def k8s_objects():
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            for key in ("apiVersion", "kind", "metadata"):
                assert key in doc, f"{path.name}: an object without {key}"
            assert doc["metadata"].get("name"), f"{path.name}: a {doc['kind']} without a name"
            objects.append((path.name, doc))
    return objects


def deployment_config():
    (configmap,) = [d for _, d in k8s_objects() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "tandem-config"]
    return configmap["data"]["tandem.yaml"]


def test_manifests_parse_and_have_what_a_cluster_needs():
    objects = k8s_objects()
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in objects}
    for want in [("Deployment", "tandem-frontend"), ("Service", "tandem-frontend"), ("Deployment", "tandem-prefill"),
                 ("Deployment", "tandem-decode"), ("StatefulSet", "tandem-etcd"), ("Service", "tandem-etcd"),
                 ("ConfigMap", "tandem-config"), ("HorizontalPodAutoscaler", "tandem-prefill"),
                 ("HorizontalPodAutoscaler", "tandem-decode")]:
        assert want in kinds, f"no {want[0]} {want[1]} under deploy/k8s/"
    drain = yaml.safe_load(deployment_config())["shutdown"]["drain_timeout_s"]
    deployments = {d["metadata"]["name"]: d for _, d in objects if d["kind"] == "Deployment"}
    # The ratio is the pools' replica counts: 1:3 as shipped.
    assert (deployments["tandem-prefill"]["spec"]["replicas"], deployments["tandem-decode"]["spec"]["replicas"]) == (1, 3)
    for name, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] > drain, f"{name}: grace period <= drain_timeout_s {drain}"
        (container,) = pod["containers"]
        assert "readinessProbe" in container and "livenessProbe" in container, name
        if name == "tandem-frontend":
            assert container["readinessProbe"]["httpGet"]["path"] == "/health"
            assert container["livenessProbe"]["httpGet"]["path"] == "/live"
            assert "preStop" in container["lifecycle"]
        else:
            assert container["resources"]["limits"]["nvidia.com/gpu"] == 1, name
            assert container["readinessProbe"]["grpc"]["service"] == "tandem.v1.Worker", name
            assert container["livenessProbe"]["grpc"]["service"] == "liveness", name
    for _, d in objects:
        if d["kind"] == "HorizontalPodAutoscaler":
            assert d["spec"]["scaleTargetRef"]["name"] in deployments


def test_configmap_deployment_passes_config_check():
    binary = os.environ.get("TANDEM_BIN") or str(ROOT / "build/bin/tandem")
    if not os.path.exists(binary):
        pytest.skip(f"tandem binary not found at {binary} (set TANDEM_BIN)")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(deployment_config())
        f.flush()
        r = subprocess.run([binary, "config", "check", "-c", f.name], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "discovery:\n  type: etcd" in r.stdout, r.stdout


def test_dashboard_parses_and_queries_tandem_metrics():
    dashboard = json.loads((ROOT / "deploy/grafana/tandem-dashboard.json").read_text())
    targets = [t for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(targets) >= 20
    for t in targets:
        assert re.search(r"\btandem_[a-z0-9_]+", t["expr"]), t["expr"]
        assert t["expr"].count("(") == t["expr"].count(")"), t["expr"]
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for want in ("time to first token", "inter-token", "tokens per second", "queue", "kv cache", "bandwidth", "load"):
        assert want in titles, f"the dashboard has no panel on {want}"
