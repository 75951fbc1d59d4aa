"""What can be checked of the deployment without a container engine or a cluster.

- `sabot manifest` prints app_manifest.yml for a real URL, and refuses a bad one in one line.
- The Dockerfile: every COPY source is in the build context (.dockerignore included), the lock
  file is installed with hashes, the user is not root, and its HEALTHCHECK command works against
  a running server.
- compose.yml: parses, and runs `serve --no-worker`, `worker` and a healthy PostgreSQL.
- The Helm chart: rendered by Helm itself, so what is checked is what `helm install` would apply
  (a renderer of our own could agree with itself and not with Helm). helm-python-sdk binds Helm
  v4's Go SDK (its template engine, Sprig, values merging, `required`) through a shared library
  that its PyPI wheel ships, so `helm template` runs in-process with no helm binary, cluster or
  download. The chart also passes `helm lint --strict`, and every rendered object is validated
  against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields are errors).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import helm_python as helm
import httpx
import kubernetes_validate
import pytest
import yaml
from sqlalchemy.engine import make_url

from bot.cli import manifest
from bot.process.settings import SERVE_NEEDS, WORKER_NEEDS
from sandbox.bot_process import start_bot
from sandbox.runner import Sandbox, free_port
from workflows.policy_file import load_policy

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "sabot"
KUBERNETES_VERSION = "1.30.0"


def sabot(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


# -- sabot manifest ---------------------------------------------------------------------------


def test_manifest_has_the_real_url_everywhere() -> None:
    done = sabot("manifest", "--url", "https://sabot.acme.io")
    assert done.returncode == 0, done.stderr
    assert "https://bot.example.com" not in done.stdout
    source = (ROOT / "app_manifest.yml").read_text()
    assert done.stdout == source.replace("https://bot.example.com", "https://sabot.acme.io")
    printed = yaml.safe_load(done.stdout)
    [command] = printed["features"]["slash_commands"]
    assert command["url"] == "https://sabot.acme.io/slack/events"
    assert printed["settings"]["interactivity"]["request_url"] == command["url"]
    assert printed["settings"]["event_subscriptions"]["request_url"] == command["url"]


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("https://sabot.acme.io/", "https://sabot.acme.io"),
        ("https://Sabot.Acme.io:8443", "https://sabot.acme.io:8443"),
        ("  https://sabot.acme.io  ", "https://sabot.acme.io"),
    ],
)
def test_manifest_url_is_normalised(given: str, base: str) -> None:
    assert manifest.base_url(given) == base


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("http://sabot.acme.io", "https://"),
        ("sabot.acme.io", "https://"),
        ("https://sabot.acme.io/slack/events", "without a path"),
        ("https://sabot.acme.io?x=1", "without a path"),
        ("https://sabot.acme.io#top", "without a path"),
        ("https://user:pw@sabot.acme.io", "host name"),
        ("https://", "host name"),
        ("https://sabot.acme.io:port", "not a URL"),
    ],
)
def test_manifest_refuses_a_bad_url_in_one_line(given: str, says: str) -> None:
    done = sabot("manifest", "--url", given)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("sabot: ") and says in done.stderr


def test_manifest_from_another_file_or_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other.yml"
    other.write_text("url: https://bot.example.com/slack/events\n")
    done = sabot("manifest", "--url", "https://a.example.org", "--file", str(other))
    assert done.stdout == "url: https://a.example.org/slack/events\n"
    plain = tmp_path / "plain.yml"
    plain.write_text("url: https://somewhere.else/\n")
    done = sabot("manifest", "--url", "https://a.example.org", "--file", str(plain))
    assert done.returncode == 2 and "has no https://bot.example.com" in done.stderr
    # installed (no checkout beside the package), as in the image: the working folder's copy
    monkeypatch.setattr(manifest, "__file__", str(tmp_path / "site" / "bot" / "manifest.py"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(manifest.ManifestError, match="--file"):
        manifest.find_manifest()
    (tmp_path / "app_manifest.yml").write_text(other.read_text())
    assert manifest.find_manifest() == tmp_path / "app_manifest.yml"


# -- Dockerfile -------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str
    stage: int


def dockerfile() -> list[Instruction]:
    """The instructions, continuation lines joined, each with the index of its stage."""
    text = (DEPLOY / "Dockerfile").read_text()
    logical = re.sub(r"\\\n", " ", text)
    found, stage = [], -1
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        found.append(Instruction(keyword, arguments.strip(), stage))
    return found


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match, plus `**` for any number of folders, as Docker reads it."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        else:
            out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
            i += 1
    return re.compile(out)


def dockerignore_allows(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    patterns = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        raw = raw.strip()
        if raw and not raw.startswith("#"):
            negated = raw.startswith("!")
            patterns.append((glob_regex(raw.lstrip("!").strip("/")), negated))
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for regex, negated in patterns:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            included = negated
    return included


def context_files(source: str) -> list[str]:
    path = ROOT / source
    if path.is_dir():
        return [
            str(p.relative_to(ROOT))
            for p in path.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        ]
    return [source]


def test_docker_build_context_has_what_the_dockerfile_copies() -> None:
    copies = [i for i in dockerfile() if i.keyword == "COPY" and "--from=" not in i.arguments]
    assert copies
    copied: list[str] = []
    for instruction in copies:
        *sources, _target = shlex.split(instruction.arguments)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            files = context_files(source)
            assert files and all(dockerignore_allows(f) for f in files), (
                f"COPY {source}: .dockerignore leaves it out"
            )
            copied.append(source)
    # what `pip install /src` builds: the packages, the readme, the migrations
    pyproject = (ROOT / "pyproject.toml").read_text()
    for package in ("bot", "workflows", "sandbox"):
        assert f'"{package}*"' in pyproject and package in copied
    assert {"pyproject.toml", "README.md", "requirements/main.lock"} <= set(copied)
    assert any(f.startswith("workflows/migrations/versions/") for f in context_files("workflows"))
    # nothing secret or bulky goes into the context
    kept_out_paths = (".env", ".venv/bin/python", ".git/HEAD", "tests/test_deploy.py", "x.db")
    for kept_out in (*kept_out_paths, "bot/__pycache__/app.cpython-311.pyc", "__pycache__/x"):
        assert not dockerignore_allows(kept_out), kept_out


def test_dockerfile_installs_the_lock_as_a_non_root_user() -> None:
    steps = dockerfile()
    final = max(i.stage for i in steps)
    assert final >= 1, "multi-stage: build, then a runtime without build tools"
    runs = " ".join(i.arguments for i in steps if i.keyword == "RUN")
    assert re.search(r"pip install --require-hashes -r \S*main\.lock", runs)
    assert re.search(r"pip install --no-deps /src", runs)
    [user] = [i.arguments for i in steps if i.keyword == "USER" and i.stage == final]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric: Kubernetes can check runAsNonRoot
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    [entrypoint] = [i.arguments for i in steps if i.keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["sabot"]
    [command] = [i.arguments for i in steps if i.keyword == "CMD"]
    assert json.loads(command)[0] == "serve" and "0.0.0.0" in json.loads(command)
    froms = [i.arguments.split()[0] for i in steps if i.keyword == "FROM"]
    assert len(set(froms)) == 1, "the runtime stage must match the build stage's Python"


def test_lock_file_pins_every_dependency_with_hashes() -> None:
    lock = (ROOT / "requirements" / "main.lock").read_text()
    pinned = {
        re.sub(r"[-_.]+", "-", m.group(1).lower())
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", lock, re.M)
    }
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.split("\n", 2)[2])
    assert all("--hash=sha256:" in entry for entry in entries if "==" in entry)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in declared:
        name = re.split(r"[<>=\[ ;]", requirement)[0]
        assert re.sub(r"[-_.]+", "-", name.lower()) in pinned, requirement


def healthcheck_command() -> list[str]:
    [check] = [i.arguments for i in dockerfile() if i.keyword == "HEALTHCHECK"]
    return list(json.loads(check.split("CMD", 1)[1].strip()))


def test_image_healthcheck_asks_healthz(sandbox: Sandbox, tmp_path: Path) -> None:
    command = healthcheck_command()
    assert command[0] == "python" and "/healthz" in command[-1]
    bot = start_bot(sandbox, f"sqlite:///{tmp_path / 'sabot.db'}", tmp_path / "sabot.log")
    port = bot.url.rsplit(":", 1)[1]
    try:
        code = command[-1].replace(":3000/", f":{port}/")
        assert subprocess.run([sys.executable, "-c", code], timeout=10).returncode == 0
    finally:
        bot.stop()
    closed = command[-1].replace(":3000/", f":{free_port()}/")
    failed = subprocess.run([sys.executable, "-c", closed], capture_output=True, timeout=10)
    assert failed.returncode != 0


# -- compose ----------------------------------------------------------------------------------


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}."""

    def one(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {rest}")
        return rest

    return re.sub(r"\$\{([A-Z_]+)(?:(:-|:\?)([^}]*))?\}", one, text)


def test_compose_runs_the_bot_a_worker_and_postgres() -> None:
    raw = (DEPLOY / "compose.yml").read_text()
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(raw, {})
    compose = yaml.safe_load(interpolate(raw, {"POSTGRES_PASSWORD": "pw"}))
    services = compose["services"]
    assert set(services) == {"bot", "worker", "postgres"}
    bot, worker, postgres = services["bot"], services["worker"], services["postgres"]
    assert bot["command"][:2] == ["serve", "--no-worker"]
    assert "0.0.0.0" in bot["command"] and bot["ports"] == ["3000:3000"]
    assert worker["command"] == ["worker"]
    assert worker["healthcheck"] == {"disable": True}
    for app in (bot, worker):
        assert (DEPLOY / app["build"]["context"] / app["build"]["dockerfile"]).is_file()
        assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert app["env_file"] == [".env"]
        env = app["environment"]
        url = make_url(env["DATABASE_URL"])
        assert url.host == "postgres" and url.password == "pw"
        assert url.username == postgres["environment"]["POSTGRES_USER"]
        assert url.database == postgres["environment"]["POSTGRES_DB"]
        [mount] = app["volumes"]
        source, target, mode = mount.split(":")
        assert target == env["SABOT_POLICY"] and mode == "ro"
        assert load_policy(str(DEPLOY / source)) is not None  # the default policy is valid
    assert postgres["environment"]["POSTGRES_PASSWORD"] == "pw"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    # the credentials the commands need are in the env file's template
    example = (DEPLOY / "env.example").read_text()
    for name in {*SERVE_NEEDS, *WORKER_NEEDS, "POSTGRES_PASSWORD"}:
        assert re.search(rf"^{name.upper()}=", example, re.M), name


# -- the Helm chart ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm.Chart, values: dict[str, Any], release: str = "prod") -> dict[str, str]:
    """`helm template RELEASE deploy/helm/sabot` with these values: each template file's name
    (NOTES.txt included) to its text. Errors such as a `required` value raise HelmRenderError."""
    rendered = chart.render(values, name=release, namespace="default")
    return {PurePosixPath(path).name: text for path, text in rendered.items()}


def merge(base: Any, override: Any) -> Any:
    """Two sets of test values as one, as helm merges two `-f` files."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {k: merge(base.get(k), override[k]) if k in override else base[k] for k in base} | {
            k: v for k, v in override.items() if k not in base
        }
    return override


POLICY = (ROOT / "examples" / "policy.yml").read_text()
GOOD_VALUES: dict[str, Any] = {
    "existingSecret": "sabot-credentials",
    "policy": POLICY,
    "config": {"atlassianOrgId": "org-1"},
}


def manifests(chart: helm.Chart, values: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for name, text in render(chart, values).items():
        if name == "NOTES.txt" or not text.strip():
            continue
        for document in yaml.safe_load_all(text):
            if document:
                yield document


def by_kind(chart: helm.Chart, values: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests(chart, values)}


def test_chart_passes_helm_lint_strict() -> None:
    report = helm.lint(CHART, GOOD_VALUES, strict=True, kube_version=f"v{KUBERNETES_VERSION}")
    assert report["total_charts_linted"] == 1 and report["errors"] == []
    # severity 1 is advice ("icon is recommended"); 2 and 3 are warnings and errors
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_chart_renders_objects_kubernetes_accepts(chart: helm.Chart) -> None:
    for values in (
        GOOD_VALUES,
        merge(GOOD_VALUES, {"http": {"replicas": 4}, "fullnameOverride": "sa"}),
        merge(
            GOOD_VALUES,
            {
                "config": {"atlassianSiteId": "cloud-1"},
                "extraEnv": [{"name": "SABOT_COMMAND", "value": "/sa"}],
                "imagePullSecrets": [{"name": "registry"}],
                "nodeSelector": {"pool": "apps"},
                "worker": {"podAnnotations": {"team": "identity"}},
            },
        ),
    ):
        objects = list(manifests(chart, values))
        kinds = sorted(o["kind"] for o in objects)
        assert kinds == ["ConfigMap", "Deployment", "Deployment", "PodDisruptionBudget", "Service"]
        for obj in objects:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    # NOTES.txt renders too
    assert "sabot manifest --url" in render(chart, GOOD_VALUES)["NOTES.txt"]


def test_chart_ingress_routes_only_slack_events_and_bounds_slow_clients(chart: helm.Chart) -> None:
    values = merge(
        GOOD_VALUES,
        {"ingress": {"enabled": True, "host": "sabot.acme.io", "tlsSecretName": "sabot-tls"}},
    )
    objects = by_kind(chart, values)
    ingress = objects[("Ingress", "prod-sabot")]
    kubernetes_validate.validate(ingress, KUBERNETES_VERSION, strict=True)
    [rule] = ingress["spec"]["rules"]
    [path] = rule["http"]["paths"]
    assert rule["host"] == "sabot.acme.io" and ingress["spec"]["tls"][0]["hosts"] == [rule["host"]]
    assert path["path"] == "/slack/events" and path["pathType"] == "Exact"
    service = objects[("Service", "prod-sabot")]
    assert path["backend"]["service"]["name"] == service["metadata"]["name"]
    assert path["backend"]["service"]["port"]["name"] == service["spec"]["ports"][0]["name"]
    annotations = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "proxy-read-timeout"] == "10"
    assert annotations[prefix + "proxy-send-timeout"] == "10"
    assert annotations[prefix + "proxy-body-size"] == "1m"
    assert annotations[prefix + "proxy-request-buffering"] == "on"
    # off by default, and refused without a host when on
    assert ("Ingress", "prod-sabot") not in by_kind(chart, GOOD_VALUES)
    with pytest.raises(helm.HelmRenderError, match=r"ingress\.host"):
        render(chart, merge(GOOD_VALUES, {"ingress": {"enabled": True}}))


def test_chart_runs_http_replicas_and_a_worker(chart: helm.Chart) -> None:
    objects = by_kind(chart, GOOD_VALUES)
    http = objects[("Deployment", "prod-sabot-http")]
    worker = objects[("Deployment", "prod-sabot-worker")]
    assert http["spec"]["replicas"] == 2 and worker["spec"]["replicas"] == 1
    [serve] = http["spec"]["template"]["spec"]["containers"]
    [work] = worker["spec"]["template"]["spec"]["containers"]
    assert serve["args"][:2] == ["serve", "--no-worker"] and work["args"] == ["worker"]
    assert serve["image"] == work["image"] == f"sabot:{chart.metadata['appVersion']}"
    port = serve["ports"][0]["containerPort"]
    assert serve["args"][-2:] == ["--port", str(port)] and "0.0.0.0" in serve["args"]
    assert serve["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert serve["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "livenessProbe" not in work  # no HTTP port in the worker
    for pod, container in ((http, serve), (worker, work)):
        spec = pod["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys()


def test_chart_takes_credentials_from_the_secret_and_mounts_the_policy(
    chart: helm.Chart, tmp_path: Path
) -> None:
    objects = by_kind(chart, GOOD_VALUES)
    configmap = objects[("ConfigMap", "prod-sabot-policy")]
    policy_file = tmp_path / "policy.yml"
    policy_file.write_text(configmap["data"]["policy.yml"])
    assert yaml.safe_load(policy_file.read_text()) == yaml.safe_load(POLICY)
    assert load_policy(str(policy_file)) is not None  # the mounted text is a valid policy
    for name, needs in (("prod-sabot-http", SERVE_NEEDS), ("prod-sabot-worker", WORKER_NEEDS)):
        pod = objects[("Deployment", name)]["spec"]["template"]
        [container] = pod["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        for setting in needs:
            assert setting.upper() in env, (name, setting)
        secret_refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"] for e in env.values() if "valueFrom" in e
        }
        assert {"SLACK_BOT_TOKEN", "ATLASSIAN_API_KEY", "DATABASE_URL"} <= secret_refs.keys()
        assert {ref["name"] for ref in secret_refs.values()} == {"sabot-credentials"}
        assert all("value" not in env[n] for n in secret_refs)  # no credential in the chart
        [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == "policy"]
        assert volume["configMap"]["name"] == "prod-sabot-policy"
        [mount] = [m for m in container["volumeMounts"] if m["name"] == "policy"]
        assert env["SABOT_POLICY"]["value"] == f"{mount['mountPath']}/policy.yml"
        assert env["LOG_FORMAT"]["value"] == "json"
        checksum = pod["metadata"]["annotations"]["checksum/policy"]
        assert checksum == hashlib.sha256(POLICY.encode()).hexdigest()  # restart on change


def test_chart_service_and_disruption_budget_select_the_http_pods(chart: helm.Chart) -> None:
    objects = by_kind(chart, GOOD_VALUES)
    http_labels = objects[("Deployment", "prod-sabot-http")]["spec"]["template"]["metadata"][
        "labels"
    ]
    worker_labels = objects[("Deployment", "prod-sabot-worker")]["spec"]["template"]["metadata"][
        "labels"
    ]
    service = objects[("Service", "prod-sabot")]
    budget = objects[("PodDisruptionBudget", "prod-sabot-http")]
    for selector in (service["spec"]["selector"], budget["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= http_labels.items()
        assert not selector.items() <= worker_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert budget["spec"]["minAvailable"] == 1


@pytest.mark.parametrize(
    ("missing", "says"),
    [
        ("existingSecret", "existingSecret: name the Secret"),
        ("policy", "policy: give the approval policy file"),
        ("config", r"config\.atlassianOrgId is required"),
    ],
)
def test_chart_refuses_to_render_without_what_it_needs(
    chart: helm.Chart, missing: str, says: str
) -> None:
    values = {k: v for k, v in GOOD_VALUES.items() if k != missing}
    with pytest.raises(helm.HelmRenderError, match=says):
        render(chart, values)


def test_release_named_sabot_is_not_repeated(chart: helm.Chart) -> None:
    names = {m["metadata"]["name"] for m in manifests(chart, GOOD_VALUES)}
    assert "prod-sabot-http" in names
    rendered = render(chart, GOOD_VALUES, release="sabot")["deployment-http.yaml"]
    assert yaml.safe_load(rendered)["metadata"]["name"] == "sabot-http"


def test_metrics_port_is_the_http_port() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    annotations = values["http"]["podAnnotations"]
    assert annotations["prometheus.io/port"] == str(values["http"]["port"])
    assert annotations["prometheus.io/path"] == "/metrics"


def test_probes_paths_answer(sandbox: Sandbox, tmp_path: Path) -> None:
    """The paths the chart probes exist on the server the image runs."""
    bot = start_bot(sandbox, f"sqlite:///{tmp_path / 'sabot.db'}", tmp_path / "sabot.log")
    try:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert httpx.get(f"{bot.url}{path}").status_code == 200, path
    finally:
        bot.stop()
