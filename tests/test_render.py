"""render.yaml: a Render Blueprint that keeps to Render's blueprint spec and agrees with docker-compose.yml.

Render can't be reached from here, so the blueprint is held to the rules of
Render's Blueprint YAML reference (https://render.com/docs/blueprint-spec)
that a typo would break: service types, required keys, disk fields, and that
every fromService / fromDatabase / fromGroup reference resolves. Then to
docker-compose.yml, which the end-to-end test runs for real: the same images,
commands, env vars (names and values) and persistent paths. Both checks are
functions returning problems, so seeded mistakes can prove they are caught.
"""

from __future__ import annotations

import copy
import re
from functools import cache

import pytest
import yaml

from tender_pipeline.staging import is_remote
from tests.services import REPO
from tests.test_compose import documented, interpolate_default

# --------------------------------------------------------------------------- Render's spec (the parts we use)
TOP_LEVEL = {"services", "databases", "envVarGroups", "previews", "projects", "ungrouped"}
SERVICE_TYPES = {"web", "pserv", "worker", "cron", "keyvalue", "redis"}
RUNTIMES = {"docker", "image", "node", "python", "go", "ruby", "rust", "elixir", "static"}
COMPUTE_PLANS = {"free", "starter", "standard", "pro", "pro plus", "pro max", "pro ultra"}
KEYVALUE_PLANS = {"free", "starter", "standard", "pro", "pro plus"}
DATABASE_PLANS = re.compile(r"^(free|basic-(256mb|1gb|4gb)|(pro|accelerated)-\d+gb)$")
DISK_FIELDS = {"name", "mountPath", "sizeGB"}
DATABASE_PROPERTIES = {"connectionString", "host", "port", "user", "password", "database"}
SERVICE_PROPERTIES = {"host", "port", "hostport", "connectionString"}
ENV_SOURCES = ("value", "generateValue", "sync", "fromDatabase", "fromService", "fromGroup")

# --------------------------------------------------------------------------- how the two files map
# Render service -> the compose service it stands for.
COMPOSE_OF = {
    "chroma": "chroma",
    "search-api": "search-api",
    "airflow-apiserver": "airflow-apiserver",
    "airflow-scheduler": "airflow-scheduler",
    "airflow-dag-processor": "airflow-dag-processor",
    "airflow-triggerer": "airflow-triggerer",
    "airflow-worker": "airflow-worker",
    "airflow-housekeeping": "airflow-housekeeping",
}
# A Render cron job runs one pass on its schedule where compose's service loops (same script).
CRON_OF_LOOP = {"airflow-housekeeping": "--loop"}
# Compose services Render provides in another form.
PROVIDED_BY_RENDER = {
    "postgres": "Render Postgres (databases:)",
    "redis": "Render Key Value",
    "nginx": "Render's load balancer in front of web services",
    "airflow-init": "the api-server's preDeployCommand",
}
# Env vars only one side sets, and why.
RENDER_ONLY = {
    "PORT": "the port Render routes a web service's traffic to",
    "IMAGE_TARGET": "build arg selecting the Dockerfile stage (compose: build.target)",
    "AIRFLOW__API_AUTH__JWT_SECRET": "compose shares it through airflow.cfg on the airflow-config volume",
    "AIRFLOW__API__SECRET_KEY": "compose shares it through airflow.cfg on the airflow-config volume",
}
COMPOSE_ONLY = {
    "AIRFLOW__CELERY__RESULT_BACKEND": "unset, Airflow uses db+<AIRFLOW__DATABASE__SQL_ALCHEMY_CONN>",
}
# airflow-init's switches for the image's entrypoint, given inline in the preDeployCommand.
INIT_FLAGS = ("_AIRFLOW_DB_MIGRATE", "_AIRFLOW_WWW_USER_CREATE")
# What a compose value that names another compose service becomes on Render.
REFERENCES = {
    "CHROMA_HOST": ("fromService", "pserv", "chroma", "host"),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": ("fromDatabase", None, "tender-airflow-db", "connectionString"),
    "DATABASE_URL": ("fromDatabase", None, "tender-airflow-db", "connectionString"),
    "AIRFLOW__CELERY__BROKER_URL": ("fromService", "keyvalue", "tender-celery-broker", "connectionString"),
}


@cache
def _blueprint() -> dict:
    return yaml.safe_load((REPO / "render.yaml").read_text())


def blueprint() -> dict:
    return copy.deepcopy(_blueprint())


@cache
def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def compose() -> dict:
    return copy.deepcopy(_compose())


# --------------------------------------------------------------------------- spec checks
def spec_problems(bp: dict) -> list[str]:
    """Where the blueprint breaks Render's Blueprint YAML rules (empty: none found)."""
    problems = [f"unknown top-level key {k!r}" for k in bp if k not in TOP_LEVEL]
    services = bp.get("services") or []
    databases = bp.get("databases") or []
    groups = bp.get("envVarGroups") or []
    names = [s.get("name") for s in services]
    problems += [f"service name {n!r} used twice" for n in set(names) if names.count(n) > 1]
    by_type = {(s.get("type"), s.get("name")) for s in services}
    db_names = {d.get("name") for d in databases}
    group_names = {g.get("name") for g in groups}

    for db in databases:
        where = f"database {db.get('name')!r}"
        if not db.get("name"):
            problems.append("a database has no name")
        if not DATABASE_PLANS.match(str(db.get("plan", ""))):
            problems.append(f"{where}: unknown plan {db.get('plan')!r}")
        if "diskSizeGB" in db and (not isinstance(db["diskSizeGB"], int) or db["diskSizeGB"] < 1):
            problems.append(f"{where}: diskSizeGB must be a whole number >= 1")
        if "postgresMajorVersion" in db and not re.fullmatch(r"\d{2}", str(db["postgresMajorVersion"])):
            problems.append(f"{where}: postgresMajorVersion must be a major version like '16'")

    for svc in services:
        name, kind = svc.get("name"), svc.get("type")
        where = f"service {name!r}"
        if not name:
            problems.append("a service has no name")
        if kind not in SERVICE_TYPES:
            problems.append(f"{where}: unknown type {kind!r}")
            continue
        if kind in {"keyvalue", "redis"}:
            if "ipAllowList" not in svc:
                problems.append(f"{where}: Key Value needs ipAllowList ([] = internal connections only)")
            if svc.get("plan") not in KEYVALUE_PLANS:
                problems.append(f"{where}: unknown Key Value plan {svc.get('plan')!r}")
            continue
        runtime = svc.get("runtime")
        if runtime not in RUNTIMES:
            problems.append(f"{where}: unknown or missing runtime {runtime!r}")
        if svc.get("plan") not in COMPUTE_PLANS:
            problems.append(f"{where}: unknown plan {svc.get('plan')!r}")
        if runtime == "docker":
            for key in ("dockerfilePath", "dockerContext"):
                path = svc.get(key)
                if not path or not (REPO / path).exists():
                    problems.append(f"{where}: {key} {path!r} is not in the repository")
        if runtime == "image" and not (svc.get("image") or {}).get("url"):
            problems.append(f"{where}: runtime image needs image.url")
        if kind == "cron" and len(str(svc.get("schedule", "")).split()) != 5:
            problems.append(f"{where}: a cron job needs a five-field schedule")
        if kind == "web" and not str(svc.get("healthCheckPath", "")).startswith("/"):
            problems.append(f"{where}: a web service needs a healthCheckPath")
        if kind != "web" and "healthCheckPath" in svc:
            problems.append(f"{where}: healthCheckPath is for web services only")
        disk = svc.get("disk")
        if disk is not None:
            if kind not in {"web", "pserv", "worker"}:
                problems.append(f"{where}: a {kind} can't have a disk")
            if set(disk) - DISK_FIELDS:
                problems.append(f"{where}: unknown disk fields {sorted(set(disk) - DISK_FIELDS)}")
            if not disk.get("name") or not str(disk.get("mountPath", "")).startswith("/"):
                problems.append(f"{where}: a disk needs a name and an absolute mountPath")
            if not isinstance(disk.get("sizeGB", 1), int) or disk.get("sizeGB", 1) < 1:
                problems.append(f"{where}: disk sizeGB must be a whole number >= 1")
            if svc.get("numInstances", 1) > 1 or "scaling" in svc:
                problems.append(f"{where}: a service with a disk runs one instance (no numInstances > 1, no scaling)")
        for env in svc.get("envVars") or []:
            problems += _env_problems(where, env, by_type, db_names, group_names, in_group=False)

    for group in groups:
        for env in group.get("envVars") or []:
            problems += _env_problems(f"envVarGroup {group.get('name')!r}", env, by_type, db_names, group_names,
                                      in_group=True)
    return problems


def _env_problems(where: str, env: dict, services: set, databases: set, groups: set, in_group: bool) -> list[str]:
    sources = [k for k in ENV_SOURCES if k in env]
    label = f"{where}: env {env.get('key', env.get('fromGroup'))!r}"
    if len(sources) != 1:
        return [f"{label} needs exactly one of {ENV_SOURCES}, has {sources}"]
    source = sources[0]
    if source != "fromGroup" and not env.get("key"):
        return [f"{where}: an env var has no key"]
    if in_group and source not in {"value", "generateValue"}:
        return [f"{label}: env groups hold only value / generateValue, not {source}"]
    if source == "sync" and env["sync"] is not False:
        return [f"{label}: sync must be false (a secret prompted for in the Dashboard)"]
    if source == "generateValue" and env["generateValue"] is not True:
        return [f"{label}: generateValue must be true"]
    if source == "value" and not isinstance(env["value"], str):
        return [f"{label}: quote the value (Render takes strings)"]
    if source == "fromDatabase":
        ref = env["fromDatabase"]
        if ref.get("name") not in databases:
            return [f"{label}: fromDatabase {ref.get('name')!r} is not a database of this blueprint"]
        if ref.get("property") not in DATABASE_PROPERTIES:
            return [f"{label}: unknown database property {ref.get('property')!r}"]
    if source == "fromService":
        ref = env["fromService"]
        if (ref.get("type"), ref.get("name")) not in services:
            return [f"{label}: fromService {ref.get('type')}/{ref.get('name')} is not a service of this blueprint"]
        if ("envVarKey" in ref) == ("property" in ref):
            return [f"{label}: fromService needs exactly one of property / envVarKey"]
        if "property" in ref and ref["property"] not in SERVICE_PROPERTIES:
            return [f"{label}: unknown service property {ref['property']!r}"]
    if source == "fromGroup" and env["fromGroup"] not in groups:
        return [f"{label}: fromGroup {env['fromGroup']!r} is not an envVarGroup of this blueprint"]
    return []


# --------------------------------------------------------------------------- agreement with compose
def render_env(bp: dict, svc: dict) -> dict[str, dict]:
    """A Render service's env vars (its groups' included), key -> the entry that sets it."""
    groups = {g["name"]: g for g in bp.get("envVarGroups") or []}
    out: dict[str, dict] = {}
    for env in svc.get("envVars") or []:
        if "fromGroup" in env:
            out.update({e["key"]: e for e in groups[env["fromGroup"]]["envVars"]})
        else:
            out[env["key"]] = env
    return out


def compose_env(cp: dict, name: str) -> dict[str, str]:
    env = cp["services"][name].get("environment") or {}
    return {k: interpolate_default(str(v)) for k, v in env.items()}


def compose_command(cp: dict, name: str) -> str:
    command = cp["services"][name].get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def agreement_problems(bp: dict, cp: dict) -> list[str]:
    """Where render.yaml and docker-compose.yml disagree (empty: none found)."""
    problems: list[str] = []
    services = {s["name"]: s for s in bp.get("services") or []}
    missing = set(COMPOSE_OF) - set(services)
    problems += [f"render.yaml lacks service {name!r}" for name in sorted(missing)]
    uncovered = set(cp["services"]) - set(COMPOSE_OF.values()) - set(PROVIDED_BY_RENDER) - {
        name for name, svc in cp["services"].items() if svc.get("profiles")}
    problems += [f"compose service {name!r} has no Render counterpart" for name in sorted(uncovered)]
    documented_vars = documented(".env.example")

    for name, compose_name in COMPOSE_OF.items():
        if name not in services:
            continue
        svc, csvc = services[name], cp["services"][compose_name]
        where = f"{name}"
        # image
        if "build" in csvc:
            build = csvc["build"]
            if svc.get("runtime") != "docker":
                problems.append(f"{where}: compose builds it, Render must too (runtime docker)")
            if (svc.get("dockerContext") or ".").rstrip("/") != build.get("context", ".").rstrip("/") or \
                    (svc.get("dockerfilePath") or "./Dockerfile").removeprefix("./") != \
                    build.get("dockerfile", "Dockerfile").removeprefix("./"):
                problems.append(f"{where}: another Dockerfile or context than compose")
            target = (render_env(bp, svc).get("IMAGE_TARGET") or {}).get("value")
            if target != build.get("target"):
                problems.append(f"{where}: IMAGE_TARGET {target!r} but compose builds target {build.get('target')!r}")
        else:
            image = interpolate_default(csvc["image"])
            url = (svc.get("image") or {}).get("url", "")
            if url.removeprefix("docker.io/") != image:
                problems.append(f"{where}: image {url!r} but compose runs {image!r}")
        # command
        command = compose_command(cp, compose_name)
        if svc.get("type") == "cron":
            command = command.removesuffix(" " + CRON_OF_LOOP.get(name, "")).strip()
        if command and svc.get("dockerCommand") != command:
            problems.append(f"{where}: dockerCommand {svc.get('dockerCommand')!r} but compose runs {command!r}")
        # env vars: names, then values
        renv, cenv = render_env(bp, svc), compose_env(cp, compose_name)
        if compose_name == "airflow-apiserver":  # it also does airflow-init's work (preDeployCommand)
            init = compose_env(cp, "airflow-init")
            cenv.update({k: v for k, v in init.items() if k not in cenv and k not in INIT_FLAGS})
        for key in sorted(set(cenv) - set(renv)):
            if key not in COMPOSE_ONLY and (name, key) not in COMPOSE_ONLY:
                problems.append(f"{where}: compose sets {key}, render.yaml does not")
        for key in sorted(set(renv) - set(cenv)):
            entry = renv[key]
            from_env_file = "sync" in entry and key in documented_vars  # compose: env_file (.env)
            if key not in RENDER_ONLY and not from_env_file:
                problems.append(f"{where}: render.yaml sets {key}, compose does not")
        for key in sorted(set(renv) & set(cenv)):
            entry, value = renv[key], cenv[key]
            if key in REFERENCES:
                source, kind, target, prop = REFERENCES[key]
                ref = entry.get(source) or {}
                if (ref.get("type"), ref.get("name"), ref.get("property")) != (kind, target, prop):
                    problems.append(f"{where}: {key} must come from {source} {target}.{prop}")
            elif "value" in entry:
                if key in OBJECT_STORAGE_OK and is_remote(entry["value"]):
                    continue  # compose switches the same way, through .env (docs/running/several-machines.md)
                if entry["value"] != value:
                    problems.append(f"{where}: {key}={entry['value']!r} but compose sets {value!r}")
            elif not ("generateValue" in entry or ("sync" in entry and key in documented_vars)):
                problems.append(f"{where}: {key} is a literal in compose ({value!r}), a {list(entry)} here")
        for key, entry in renv.items():
            if "sync" in entry and key not in documented_vars:
                problems.append(f"{where}: secret {key} is not a documented setting (.env.example)")
        # persistence: every compose volume path the code writes is on a Render disk
        disk = svc.get("disk")
        for key in ("FEEDBACK_PATH", "STAGING_URI", "LEXICAL_INDEX_PATH"):
            path = (renv.get(key) or {}).get("value")
            if path and is_remote(path):
                continue  # object storage (see staging_problems), compose's STAGING_URI from .env
            if path and not (disk and path.startswith(disk["mountPath"].rstrip("/") + "/")):
                needs = name == "search-api" or name == "airflow-worker"
                if needs:
                    problems.append(f"{where}: {key}={path} is not on the service's disk")
        if compose_name == "chroma" and (not disk or disk["mountPath"] != "/data"):
            problems.append("chroma: Chroma persists under /data, which must be its disk")
    # airflow-init's work happens in the api-server's pre-deploy step, with the same flags and pool.
    pre = services.get("airflow-apiserver", {}).get("preDeployCommand", "")
    init_env = compose_env(cp, "airflow-init")
    for flag in INIT_FLAGS:
        if f"{flag}={init_env.get(flag)}" not in pre:
            problems.append(f"airflow-apiserver: preDeployCommand lacks {flag}={init_env.get(flag)} (airflow-init)")
    pool = re.search(r"airflow pools set \S+ \"[^\"]+\" \"[^\"]+\"", compose_command(cp, "airflow-init"))
    if not pool or pool.group(0) not in pre:
        problems.append("airflow-apiserver: preDeployCommand does not create airflow-init's pool")
    return problems


# --------------------------------------------------------------------------- several worker instances
# Settings compose keeps on a volume by default and a multi-host stack points at object storage instead.
OBJECT_STORAGE_OK = {"STAGING_URI", "LEDGER_URI"}


def celery_workers(bp: dict) -> list[dict]:
    return [s for s in bp.get("services") or []
            if s.get("type") == "worker" and str(s.get("dockerCommand", "")).startswith("celery worker")]


def worker_instances(bp: dict) -> int:
    """How many Celery worker instances the blueprint can run (autoscaling counts its maximum)."""
    return sum(int((s.get("scaling") or {}).get("maxInstances", s.get("numInstances", 1))) for s in celery_workers(bp))


def staging_problems(bp: dict) -> list[str]:
    """More than one worker instance share no disk on Render: staging and the ledger must be on s3://.

    One instance may keep staging on its disk (and does by default). With more, a task on one instance
    could not read what the task before it staged on another, and a ledger on per-instance disks would
    let two runs claim one file; s3:// is the store the ledger is safe on across hosts.
    """
    if worker_instances(bp) <= 1:
        return []
    problems = []
    for svc in celery_workers(bp):
        env = render_env(bp, svc)
        staging_uri = (env.get("STAGING_URI") or {}).get("value", "")
        ledger_uri = (env.get("LEDGER_URI") or {}).get("value", "") or staging_uri
        for key, uri in (("STAGING_URI", staging_uri), ("LEDGER_URI", ledger_uri)):
            if not uri.startswith("s3://"):
                problems.append(f"{svc['name']}: {worker_instances(bp)} worker instances share no disk, but "
                                f"{key}={uri or '(unset)'!s} is not on s3://")
    return problems


# --------------------------------------------------------------------------- sized for the design point
# What `python bench/storage.py --live 2000000` measured on 2026-12-07 (docs/running/capacity.md,
# bench/README.md): steady bytes of each store at 2 million live notices, and the projected RSS of the two
# servers; Chroma's layout is issue 23's (vectors in reusable slots). Re-measure and update these with render.yaml
# whenever a store's layout changes.
STEADY_BYTES = {"chroma": 8_811_777_242, "lexical": 4_479_207_809, "staging": 12_182_559_511,
                "airflow_db": 15_400_295, "feedback": 67_697_567}
RSS_BYTES = {"chroma": 9_967_353_019, "search-api": 4_526_585_867}
# What each disk holds; a lexical index is counted twice (a merge writes the new segment before it deletes the
# old ones; a following copy keeps the previous version's files until the next is in place).
DISK_HOLDS = {"chroma": {"chroma": 1}, "airflow-worker": {"staging": 1, "lexical": 2},
              "search-api": {"lexical": 2, "feedback": 1}, "tender-airflow-db": {"airflow_db": 1}}
PLAN_MEMORY = {"starter": 512 << 20, "standard": 2 << 30, "pro": 4 << 30, "pro plus": 8 << 30,
               "pro max": 16 << 30, "pro ultra": 32 << 30}
DISK_HEADROOM, MEMORY_HEADROOM = 1.5, 1.3


def capacity_problems(bp: dict) -> list[str]:
    """Disks below 1.5x what they hold at 2M live notices, servers' plans below 1.3x their RSS there."""
    sized = {s["name"]: (s.get("disk") or {}).get("sizeGB") for s in bp.get("services") or []}
    sized.update({d["name"]: d.get("diskSizeGB") for d in bp.get("databases") or []})
    problems = []
    for name, holds in DISK_HOLDS.items():
        need = DISK_HEADROOM * sum(STEADY_BYTES[store] * n for store, n in holds.items())
        if not sized.get(name) or sized[name] * 10**9 < need:
            problems.append(f"{name}: disk {sized.get(name)} GB < {need / 1e9:.1f} GB (1.5x its stores at 2M)")
    plans = {s["name"]: s.get("plan") for s in bp.get("services") or []}
    for name, rss in RSS_BYTES.items():
        if PLAN_MEMORY.get(plans.get(name), 0) < MEMORY_HEADROOM * rss:
            problems.append(f"{name}: plan {plans.get(name)!r} holds less than 1.3x its {rss / 2**30:.1f} GiB RSS")
    return problems


# --------------------------------------------------------------------------- tests
def test_disks_and_plans_hold_the_design_point_with_headroom():
    assert capacity_problems(blueprint()) == []


def test_an_undersized_disk_or_plan_is_caught():
    bp = blueprint()
    _service(bp, "airflow-worker")["disk"]["sizeGB"] = 10  # the size before the design point
    _service(bp, "chroma")["plan"] = "standard"
    bp["databases"][0].pop("diskSizeGB")
    problems = capacity_problems(bp)
    assert [p.split(":")[0] for p in problems] == ["airflow-worker", "tender-airflow-db", "chroma"], problems


def test_blueprint_keeps_to_renders_spec():
    assert spec_problems(blueprint()) == []


def test_blueprint_agrees_with_compose():
    assert agreement_problems(blueprint(), compose()) == []


def test_blueprint_has_the_issue_shape():
    bp = blueprint()
    services = {s["name"]: s for s in bp["services"]}
    assert services["chroma"]["type"] == "pserv" and services["chroma"]["disk"]["mountPath"] == "/data"
    api = services["search-api"]
    assert api["type"] == "web" and api["healthCheckPath"] == "/ready" and api["disk"]
    assert services["airflow-apiserver"]["type"] == "web"
    for name in ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"):
        assert services[name]["type"] == "worker", name
    assert [d["name"] for d in bp["databases"]] == ["tender-airflow-db"]
    assert any(s["type"] == "keyvalue" for s in bp["services"])
    assert len(bp["envVarGroups"]) >= 1
    airflow_groups = [{e.get("fromGroup") for e in services[n]["envVars"]} for n in COMPOSE_OF if "airflow" in n]
    assert all("tender-airflow" in groups for groups in airflow_groups), "every Airflow service shares the group"
    generated = {e["key"] for g in bp["envVarGroups"] for e in g["envVars"] if e.get("generateValue")}
    assert {"AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"} <= generated
    secrets = {e["key"] for s in bp["services"] for e in s.get("envVars", []) if e.get("sync") is False}
    assert {"GEMINI_API_KEY", "_AIRFLOW_WWW_USER_PASSWORD"} <= secrets


def test_staging_is_on_object_storage_whenever_more_than_one_worker_instance_runs():
    bp = blueprint()
    assert worker_instances(bp) == 1 and staging_problems(bp) == []  # the default: one worker, its disk

    scaled = blueprint()
    worker = _service(scaled, "airflow-worker")
    worker.pop("disk")
    worker["numInstances"] = 2
    problems = staging_problems(scaled)
    assert any("2 worker instances" in p and "STAGING_URI=/opt/airflow/data/staging/" in p for p in problems)

    two = blueprint()
    extra = copy.deepcopy(_service(two, "airflow-worker"))
    extra.pop("disk")
    extra.update(name="airflow-worker-models", scaling={"minInstances": 1, "maxInstances": 3})
    two["services"].append(extra)
    assert worker_instances(two) == 4 and len(staging_problems(two)) == 4  # both services, staging and ledger
    group = next(g for g in two["envVarGroups"] if g["name"] == "tender-airflow")
    next(e for e in group["envVars"] if e["key"] == "STAGING_URI")["value"] = "s3://my-bucket/tenders/staging/"
    assert staging_problems(two) == [] and spec_problems(two) == []
    assert agreement_problems(two, compose()) == []  # compose takes STAGING_URI=s3://... from .env the same way
    group["envVars"].append({"key": "LEDGER_URI", "value": "/opt/airflow/data/ledger/"})
    assert [p.split(":")[0] for p in staging_problems(two)] == ["airflow-worker", "airflow-worker-models"]


def test_health_check_is_a_real_route():
    from search_api.main import app

    paths = {getattr(route, "path", None) for route in app.routes}
    api = next(s for s in blueprint()["services"] if s["name"] == "search-api")
    assert api["healthCheckPath"] in paths


def test_default_image_stage_is_selected_by_image_target():
    """Render builds without --target: the Dockerfile's last stage must be the one IMAGE_TARGET names."""
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines() if line.strip()]
    froms = [line for line in lines if line.upper().startswith("FROM ")]
    assert froms[-1].split()[1] == "${IMAGE_TARGET}"
    assert "ARG IMAGE_TARGET=search-api" in lines


# --------------------------------------------------------------------------- the checks catch seeded mistakes
def _service(bp: dict, name: str) -> dict:
    return next(s for s in bp["services"] if s["name"] == name)


def test_a_wrong_env_var_name_is_caught():
    bp = blueprint()
    env = next(e for e in _service(bp, "search-api")["envVars"] if e.get("key") == "FEEDBACK_PATH")
    env["key"] = "FEEDBACK_FILE"
    problems = agreement_problems(bp, compose())
    assert any("compose sets FEEDBACK_PATH" in p for p in problems), problems
    assert any("render.yaml sets FEEDBACK_FILE" in p for p in problems), problems


def test_a_wrong_env_var_value_is_caught():
    bp = blueprint()
    group = next(g for g in bp["envVarGroups"] if g["name"] == "tender-airflow")
    next(e for e in group["envVars"] if e["key"] == "STAGING_URI")["value"] = "/tmp/staging/"
    assert any("STAGING_URI" in p for p in agreement_problems(bp, compose()))


def test_a_compose_change_not_made_in_render_is_caught():
    cp = compose()
    cp["services"]["airflow-worker"]["environment"]["TENDER_RETRIES"] = "5"
    cp["services"]["airflow-scheduler"]["command"] = "scheduler --skip-serve-logs"
    problems = agreement_problems(blueprint(), cp)
    assert any("airflow-worker: compose sets TENDER_RETRIES" in p for p in problems), problems
    assert any("airflow-scheduler: dockerCommand" in p for p in problems), problems


def test_an_image_or_target_mismatch_is_caught():
    bp = blueprint()
    _service(bp, "chroma")["image"]["url"] = "docker.io/chromadb/chroma:1.0.0"
    next(e for e in _service(bp, "search-api")["envVars"] if e.get("key") == "IMAGE_TARGET")["value"] = "airflow"
    problems = agreement_problems(bp, compose())
    assert any(p.startswith("chroma: image") for p in problems)
    assert any(p.startswith("search-api: IMAGE_TARGET") for p in problems)


@pytest.mark.parametrize("mistake, expected", [
    (lambda bp: _service(bp, "chroma")["disk"].pop("mountPath"), "absolute mountPath"),
    (lambda bp: _service(bp, "chroma")["disk"].update(size=10), "unknown disk fields"),
    (lambda bp: _service(bp, "search-api").update(numInstances=2), "one instance"),
    (lambda bp: _service(bp, "search-api").update(type="webservice"), "unknown type"),
    (lambda bp: _service(bp, "search-api").pop("healthCheckPath"), "healthCheckPath"),
    (lambda bp: _service(bp, "airflow-worker")["envVars"][1]["fromDatabase"].update(name="airflow-db"),
     "is not a database"),
    (lambda bp: _service(bp, "search-api")["envVars"][2]["fromService"].update(type="web"),
     "is not a service"),
    (lambda bp: _service(bp, "airflow-worker")["envVars"][0].update(fromGroup="shared"), "is not an envVarGroup"),
    (lambda bp: bp["envVarGroups"][0]["envVars"].append({"key": "GEMINI_API_KEY", "sync": False}),
     "env groups hold only"),
    (lambda bp: _service(bp, "tender-celery-broker").pop("ipAllowList"), "ipAllowList"),
    (lambda bp: _service(bp, "search-api").update(dockerfilePath="./docker/Dockerfile"), "not in the repository"),
    (lambda bp: _service(bp, "airflow-housekeeping").pop("schedule"), "five-field schedule"),
    (lambda bp: bp["databases"][0].update(diskSizeGB="5"), "diskSizeGB must be"),
])
def test_spec_mistakes_are_caught(mistake, expected):
    bp = blueprint()
    mistake(bp)
    problems = spec_problems(bp)
    assert any(expected in p for p in problems), problems
