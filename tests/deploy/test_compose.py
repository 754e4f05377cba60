"""Static checks of docker-compose.yml, the Dockerfile and deploy/ (no Docker engine runs here).

Each test reads the files as they are and compares them with what the code reads or does:
the settings in ``orderflow.config.Settings``, the variables ``temporalio.envconfig`` reads,
the search attributes in ``workflows.search_attributes.ALL``, the pins in ``pyproject.toml``.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.envconfig import ClientConfigProfile

import orderflow.worker
from orderflow.config import PROJECT_ROOT, Settings
from workflows.search_attributes import ALL

ROOT = PROJECT_ROOT
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOY_README = ROOT / "deploy" / "README.md"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus.yml"

# The services deploy/README.md documents, and nothing else.
SERVICES = {
    "postgresql",
    "temporal-schema",
    "temporal",
    "temporal-setup",
    "temporal-ui",
    "mailpit",
    "keys",
    "worker",
    "web",
    "cli",
    "prometheus",
}
ORDERFLOW_SERVICES = ("keys", "worker", "cli")

# The temporalio.envconfig variables a container may set (each proven to be read below).
TEMPORAL_ENV = {
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS",
    "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "TEMPORAL_TLS_SERVER_NAME",
    "TEMPORAL_PROFILE",
    "TEMPORAL_CONFIG_FILE",
}

# temporal CLI names for the SDK's indexed value types.
CLI_TYPE = {
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}

INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


# ================================================================================= helpers


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def resolve(value: Any) -> str:
    """A compose value as the container sees it when the operator sets nothing."""
    return INTERPOLATION.sub(lambda m: m.group("default") or "", str(value))


def environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def is_pinned(image: str) -> bool:
    """A digest, or a tag naming at least major.minor that is not 'latest'."""
    if "$" in image:
        return False
    if re.search(r"@sha256:[0-9a-f]{64}$", image):
        return True
    name = image.rsplit("/", 1)[-1]
    if ":" not in name:
        return False
    tag = name.split(":", 1)[1]
    return tag != "latest" and re.search(r"\d+\.\d+", tag) is not None


def duration_seconds(text: str) -> float:
    """A compose duration ('30s', '1m30s', '1m') in seconds."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?", str(text).strip())
    assert parts and any(parts.groups()), f"not a compose duration: {text!r}"
    h, m, s, ms = (int(g or 0) for g in parts.groups())
    return h * 3600 + m * 60 + s + ms / 1000


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.partition(" ")
        out.append((keyword.upper(), args.strip()))
        current = ""
    return out


PIP_OPTIONS_WITH_VALUE = {
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "-t",
    "--target",
    "--prefix",
    "--root",
    "--trusted-host",
    "--platform",
    "--python-version",
    "--implementation",
    "--abi",
    "--progress-bar",
}


def unpinned_pip_packages(command: str) -> list[str]:
    """Packages a shell command pip-installs by name without an exact == pin.

    Local paths ('.', './x', '/x') install the project; -r/-c files are checked elsewhere.
    An editable install counts as unpinned.
    """
    bad: list[str] = []
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    segments: list[list[str]] = [[]]
    for token in lexer:
        if token in {"&&", "||", ";", "|", "&"}:
            segments.append([])
        else:
            segments[-1].append(token)
    for tokens in segments:
        while tokens and tokens[0] in {"RUN", "exec"}:
            tokens = tokens[1:]
        if tokens[:3] in (["python", "-m", "pip"], ["python3", "-m", "pip"]):
            tokens = ["pip", *tokens[3:]]
        if len(tokens) < 2 or tokens[0] not in {"pip", "pip3"} or tokens[1] != "install":
            continue
        args = iter(tokens[2:])
        for arg in args:
            if arg in {"-e", "--editable"}:
                bad.append(f"{arg} {next(args, '')}")
            elif arg in PIP_OPTIONS_WITH_VALUE:
                next(args, None)
            elif arg.startswith("-") or arg == "." or arg.startswith(("./", "/")):
                continue
            elif not re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+!\-]+", arg):
                bad.append(arg)
    return bad


# ================================================================================= services


def test_the_services_are_the_documented_ones() -> None:
    assert set(services()) == SERVICES


def test_the_operator_readme_names_every_service_and_only_real_ones() -> None:
    text = DEPLOY_README.read_text()
    table = set(re.findall(r"^\|\s*`([a-z][a-z0-9-]*)`\s*\|", text, flags=re.M))
    assert table == SERVICES, "the service table in deploy/README.md differs from compose"
    readmes = [text] + ([(ROOT / "README.md").read_text()] if (ROOT / "README.md").exists() else [])
    named: set[str] = set()
    for doc in readmes:
        named |= set(re.findall(r"docker compose run (?:--rm )?(?:-\w+ )*([a-z][a-z0-9-]*)", doc))
        named |= set(re.findall(r"--scale ([a-z][a-z0-9-]*)=", doc))
        named |= set(
            re.findall(
                r"docker compose (?:logs|stop|restart|start|exec)(?: -\w+)* ([a-z][a-z0-9-]*)", doc
            )
        )
    assert named, "the READMEs show no docker compose commands"
    assert named <= set(services()), (
        f"READMEs name services compose lacks: {named - set(services())}"
    )


def test_readme_commands_are_the_whole_story() -> None:
    text = DEPLOY_README.read_text()
    for command in (
        "docker compose up -d",
        "docker compose run --rm cli orderflow demo",
        "docker compose up -d --scale worker=4",
    ):
        assert command in text


# ================================================================================= images


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("postgres", False),
        ("postgres:latest", False),
        ("postgres:16", False),
        ("temporalio/ui:${UI_VERSION}", False),
        ("postgres:16.4-bookworm", True),
        ("temporalio/admin-tools:1.29.1-tctl-1.18.4-cli-1.5.0", True),
        ("localhost:5000/prom/prometheus:v3.5.0", True),
        ("localhost:5000/prometheus", False),
        ("postgres@sha256:" + "a" * 64, True),
    ],
)
def test_pin_rule(image: str, pinned: bool) -> None:
    assert is_pinned(image) is pinned


def test_every_pulled_image_is_pinned() -> None:
    pulled = {name: s["image"] for name, s in services().items() if "build" not in s}
    assert pulled, "no pulled images found"
    unpinned = {name: image for name, image in pulled.items() if not is_pinned(image)}
    assert not unpinned


def test_every_service_has_an_image_or_a_build() -> None:
    for name, service in services().items():
        assert "image" in service or "build" in service, name


def test_temporal_server_and_admin_tools_are_the_same_release() -> None:
    s = services()
    server_tag = s["temporal"]["image"].split(":", 1)[1]
    assert s["temporal"]["image"].startswith("temporalio/server:")
    for name in ("temporal-schema", "temporal-setup"):
        image = s[name]["image"]
        assert image.startswith("temporalio/admin-tools:"), name
        tag = image.split(":", 1)[1]
        assert tag == server_tag or tag.startswith(server_tag + "-"), (name, tag, server_tag)


def test_orderflow_services_share_the_image_built_from_the_dockerfile() -> None:
    s = services()
    for name in ORDERFLOW_SERVICES:
        build = s[name]["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert (ROOT / context / dockerfile).resolve() == DOCKERFILE.resolve(), name
    assert s["worker"].get("image") == s["cli"].get("image")


# ================================================================================= environment


def test_orderflow_environment_is_only_settings_the_code_reads() -> None:
    prefix = Settings.model_config.get("env_prefix", "")
    assert prefix == "ORDERFLOW_"
    for name in ORDERFLOW_SERVICES:
        env = environment(services()[name])
        assert env, name
        for key in env:
            if key.startswith("TEMPORAL_"):
                assert key in TEMPORAL_ENV, f"{name}: {key} is not a temporalio.envconfig variable"
            else:
                assert key.startswith(prefix), f"{name}: {key} is read by nothing"
                field = key.removeprefix(prefix).lower()
                assert field in Settings.model_fields, f"{name}: {key} is not a Settings field"


def test_the_worker_environment_gives_operators_the_sizing_knobs() -> None:
    env = environment(services()["worker"])
    for key in (
        "ORDERFLOW_TASK_QUEUE",
        "ORDERFLOW_MAX_CONCURRENT_ACTIVITIES",
        "ORDERFLOW_MAX_CONCURRENT_WORKFLOW_TASKS",
        "ORDERFLOW_MAX_CACHED_WORKFLOWS",
        "ORDERFLOW_METRICS_PORT",
        "ORDERFLOW_DATA_DIR",
        "ORDERFLOW_SMTP_HOST",
        "TEMPORAL_ADDRESS",
        "TEMPORAL_NAMESPACE",
    ):
        assert key in env, key
    for key in (
        "ORDERFLOW_MAX_CONCURRENT_ACTIVITIES",
        "ORDERFLOW_MAX_CONCURRENT_WORKFLOW_TASKS",
        "ORDERFLOW_MAX_CACHED_WORKFLOWS",
    ):
        assert INTERPOLATION.search(str(env[key])), f"{key} cannot be set by the operator"


@pytest.mark.parametrize("name", ORDERFLOW_SERVICES)
def test_the_environment_is_valid_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = environment(services()[name])
    for key in list(os.environ):
        if key.startswith(("ORDERFLOW_", "TEMPORAL_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, resolve(value))
    settings = Settings()
    assert str(settings.data_dir) == resolve(env["ORDERFLOW_DATA_DIR"])
    assert settings.smtp_host == services()["mailpit"].get("hostname", "mailpit")
    profile = ClientConfigProfile.load(disable_file=True)
    assert profile.address == resolve(env["TEMPORAL_ADDRESS"])
    assert profile.api_key is None and profile.tls is None, "plain connection to the local server"


def test_no_temporal_variable_is_set_empty() -> None:
    # An empty TEMPORAL_API_KEY or TEMPORAL_TLS still turns TLS on (see the next test).
    for name, service in services().items():
        for key, value in environment(service).items():
            if key.startswith("TEMPORAL_"):
                assert value is not None and resolve(value) != "", f"{name}: {key} is empty"


def test_an_empty_api_key_really_turns_tls_on() -> None:
    """Why the test above matters; if this ever stops holding, that rule can go."""
    profile = ClientConfigProfile.load(
        disable_file=True, override_env_vars={"TEMPORAL_ADDRESS": "h:1", "TEMPORAL_API_KEY": ""}
    )
    assert profile.to_client_connect_config().get("tls") is True


def test_every_allowed_temporal_variable_is_read_by_envconfig(tmp_path: Path) -> None:
    def load(env: dict[str, str], *, files: bool = False) -> ClientConfigProfile:
        return ClientConfigProfile.load(disable_file=not files, override_env_vars=env)

    toml = tmp_path / "temporal.toml"
    toml.write_text(
        '[profile.default]\naddress = "file-default:7233"\n'
        '[profile.other]\naddress = "file-other:7233"\n'
    )
    base = load({})
    effects = {
        "TEMPORAL_ADDRESS": load({"TEMPORAL_ADDRESS": "h:1"}).address == "h:1",
        "TEMPORAL_NAMESPACE": load({"TEMPORAL_NAMESPACE": "ns"}).namespace == "ns",
        "TEMPORAL_API_KEY": load({"TEMPORAL_API_KEY": "k"}).api_key == "k",
        "TEMPORAL_TLS": base.tls is None and load({"TEMPORAL_TLS": "true"}).tls is not None,
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(
            (load({"TEMPORAL_TLS_CLIENT_CERT_PATH": "/c.pem"}).tls or _NoTLS).client_cert
        )
        == "/c.pem",
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(
            (load({"TEMPORAL_TLS_CLIENT_KEY_PATH": "/k.pem"}).tls or _NoTLS).client_private_key
        )
        == "/k.pem",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(
            (
                load({"TEMPORAL_TLS_SERVER_CA_CERT_PATH": "/ca.pem"}).tls or _NoTLS
            ).server_root_ca_cert
        )
        == "/ca.pem",
        "TEMPORAL_TLS_SERVER_NAME": (
            load({"TEMPORAL_TLS_SERVER_NAME": "sni"}).tls or _NoTLS
        ).server_name
        == "sni",
        "TEMPORAL_CONFIG_FILE": load({"TEMPORAL_CONFIG_FILE": str(toml)}, files=True).address
        == "file-default:7233",
        "TEMPORAL_PROFILE": load(
            {"TEMPORAL_CONFIG_FILE": str(toml), "TEMPORAL_PROFILE": "other"}, files=True
        ).address
        == "file-other:7233",
    }
    assert set(effects) == TEMPORAL_ENV
    assert all(effects.values()), {k: v for k, v in effects.items() if not v}


class _NoTLS:
    client_cert = client_private_key = server_root_ca_cert = server_name = None


# ================================================================================= Temporal setup


def test_the_setup_step_registers_exactly_the_search_attributes_the_code_upserts() -> None:
    setup = services()["temporal-setup"]
    command = setup["command"]
    script = " ".join(command) if isinstance(command, list) else str(command)
    script = script.replace("\\\n", " ")
    registered = re.findall(r"--name\s+([A-Za-z_]\w*)\s+--type\s+([A-Za-z]+)\b", script)
    assert "search-attribute create" in script
    assert len(registered) == len(set(registered)), "a search attribute is registered twice"
    expected = {(key.name, CLI_TYPE[key.indexed_value_type]) for key in ALL}
    assert set(registered) == expected


def test_the_setup_step_creates_the_namespace_the_workers_use() -> None:
    s = services()
    setup_env = environment(s["temporal-setup"])
    script = json.dumps(s["temporal-setup"]["command"])
    assert "namespace create" in script
    for name in ORDERFLOW_SERVICES:
        env = environment(s[name])
        assert resolve(env["TEMPORAL_NAMESPACE"]) == resolve(setup_env["TEMPORAL_NAMESPACE"])
        assert resolve(env["TEMPORAL_ADDRESS"]) == resolve(setup_env["TEMPORAL_ADDRESS"])
    host = resolve(setup_env["TEMPORAL_ADDRESS"]).split(":")[0]
    assert host in s, f"{host} is not a compose service"


def test_the_schema_step_sets_up_both_databases_the_server_uses() -> None:
    s = services()
    server_env = environment(s["temporal"])
    script = json.dumps(s["temporal-schema"]["command"])
    assert resolve(server_env["DB"]) == "postgres12"
    assert "--plugin postgres12" in script
    for db, schema in (
        (resolve(server_env["DBNAME"]), "temporal"),
        (resolve(server_env["VISIBILITY_DBNAME"]), "visibility"),
    ):
        assert f"--db {db} setup-schema" in script
        assert re.search(
            rf"--db {db} update-schema -d \S+/postgresql/v12/{schema}/versioned", script
        )
    assert resolve(server_env["POSTGRES_SEEDS"]) in s


# ================================================================================= ordering


def test_postgres_and_temporal_have_health_checks() -> None:
    for name in ("postgresql", "temporal", "mailpit", "worker"):
        check = services()[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), name


def test_depends_on_always_names_a_condition_and_the_condition_can_be_met() -> None:
    s = services()
    seen = 0
    for name, service in s.items():
        deps = service.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on without conditions"
        for dep, spec in deps.items():
            seen += 1
            assert dep in s, f"{name} depends on unknown {dep}"
            condition = spec.get("condition")
            if condition == "service_healthy":
                assert s[dep].get("healthcheck", {}).get("test"), f"{dep} has no health check"
            elif condition == "service_completed_successfully":
                assert s[dep].get("restart", "no") == "no", f"{dep} is not a one-shot step"
            else:
                pytest.fail(f"{name} -> {dep}: condition {condition!r}")
    assert seen


@pytest.mark.parametrize(
    ("service", "dependency", "condition"),
    [
        ("temporal-schema", "postgresql", "service_healthy"),
        ("temporal", "postgresql", "service_healthy"),
        ("temporal", "temporal-schema", "service_completed_successfully"),
        ("temporal-setup", "temporal", "service_healthy"),
        ("temporal-ui", "temporal", "service_healthy"),
        ("worker", "temporal-setup", "service_completed_successfully"),
        ("worker", "mailpit", "service_healthy"),
        ("worker", "keys", "service_completed_successfully"),
        ("web", "keys", "service_completed_successfully"),
        ("web", "temporal-setup", "service_completed_successfully"),
        ("cli", "worker", "service_healthy"),
    ],
)
def test_start_order(service: str, dependency: str, condition: str) -> None:
    assert services()[service]["depends_on"][dependency]["condition"] == condition


# ================================================================================= worker


def test_the_worker_can_be_scaled() -> None:
    worker = services()["worker"]
    assert "container_name" not in worker
    for port in worker.get("ports", []):
        published = (
            port.get("published")
            if isinstance(port, dict)
            else (str(port).rsplit(":", 1)[0] if ":" in str(port) else None)
        )
        assert not published, f"worker publishes host port {port}"


def test_stop_grace_period_outlasts_the_graceful_shutdown() -> None:
    source = inspect.getsource(orderflow.worker.build_worker)
    match = re.search(r"graceful_shutdown_timeout=timedelta\(seconds=(\d+(?:\.\d+)?)\)", source)
    assert match, "build_worker no longer sets graceful_shutdown_timeout=timedelta(seconds=N)"
    graceful = float(match.group(1))
    worker = services()["worker"]
    assert duration_seconds(worker["stop_grace_period"]) > graceful
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"


def test_duration_parser() -> None:
    assert duration_seconds("30s") == 30
    assert duration_seconds("1m30s") == 90
    assert duration_seconds("2m") == 120
    assert duration_seconds("1h") == 3600


def test_state_lives_in_named_volumes() -> None:
    data = compose()
    declared = set(data.get("volumes") or {})

    def named_mount(service: str, target: str) -> str | None:
        for volume in services()[service].get("volumes", []):
            if isinstance(volume, dict):
                source, dest = volume.get("source"), volume.get("target")
            else:
                source, _, rest = str(volume).partition(":")
                dest = rest.split(":")[0]
            if dest == target and source and not source.startswith((".", "/", "~")):
                return source
        return None

    pg = named_mount("postgresql", "/var/lib/postgresql/data")
    assert pg in declared
    for name in ORDERFLOW_SERVICES:
        data_dir = resolve(environment(services()[name])["ORDERFLOW_DATA_DIR"])
        assert named_mount(name, data_dir) in declared, name


# ================================================================================= prometheus


def test_prometheus_scrapes_every_worker_replica_on_the_metrics_port() -> None:
    s = services()
    mounts = [str(v) for v in s["prometheus"].get("volumes", [])]
    assert any(m.startswith("./deploy/prometheus.yml:") for m in mounts)
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    port = int(resolve(environment(s["worker"])["ORDERFLOW_METRICS_PORT"]))
    discovered = [
        sd
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        if {"worker", "tasks.worker"} & set(sd.get("names", []))
    ]
    assert discovered, "no DNS discovery of the worker service"
    assert all(sd.get("port") == port and sd.get("type", "SRV") == "A" for sd in discovered)
    static = [
        t
        for job in config["scrape_configs"]
        for sc in job.get("static_configs", [])
        for t in sc["targets"]
    ]
    assert not any(t.startswith("worker:") for t in static), "a static target sees one replica only"


# ================================================================================= Dockerfile


def test_pip_rule() -> None:
    assert unpinned_pip_packages("pip install requests") == ["requests"]
    assert unpinned_pip_packages("pip install 'requests>=2'") == ["requests>=2"]
    assert unpinned_pip_packages("python -m pip install -U temporalio") == ["temporalio"]
    assert unpinned_pip_packages("pip install -e .") == ["-e ."]
    assert unpinned_pip_packages("pip install requests==2.32.3 --no-deps .") == []
    assert unpinned_pip_packages("pip install -r /tmp/requirements.txt && rm x") == []
    assert unpinned_pip_packages('python -c "a; b" && pip install x==1 ; pip install y') == ["y"]


def test_dockerfile_pip_installs_nothing_unpinned() -> None:
    runs = [args for kw, args in dockerfile_instructions() if kw == "RUN"]
    installs = [r for r in runs if re.search(r"\bpip3? install\b", r)]
    assert installs
    for run in installs:
        assert unpinned_pip_packages(run) == [], run


def test_dockerfile_installs_the_project_with_the_pins_of_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==\S+", dep), (
            f"pyproject dependency not pinned: {dep}"
        )
    runs = " ".join(args for kw, args in dockerfile_instructions() if kw == "RUN")
    # The requirements come from pyproject.toml itself, and the project from its sources.
    assert "pyproject.toml" in runs and "['project']['dependencies']" in runs
    assert re.search(r"pip install (?:--no-deps )?\.(?:\s|$)", runs)
    copied = {
        PurePosixPath(src).name
        for kw, args in dockerfile_instructions()
        if kw == "COPY"
        for src in args.split()[:-1]
        if not src.startswith("--")
    }
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    wanted = {p.rstrip("*") for p in packages["packages"]["find"]["include"]}
    wanted |= {f"{m}.py" for m in packages.get("py-modules", [])}
    assert wanted | {"pyproject.toml", "seeds"} <= copied


def test_dockerfile_base_is_a_pinned_slim_python_of_the_supported_version() -> None:
    froms = [args.split()[0] for kw, args in dockerfile_instructions() if kw == "FROM"]
    assert froms
    for image in froms:
        assert is_pinned(image), image
    final = froms[-1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", final), final
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires.startswith(">=3.11")


def test_dockerfile_runs_the_worker_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    users = [args.split(":")[0] for kw, args in instructions if kw == "USER"]
    assert users and users[-1] not in {"root", "0"}
    cmd = [json.loads(args) for kw, args in instructions if kw == "CMD"]
    assert cmd[-1] == ["python", "worker.py"]
    assert ("STOPSIGNAL", "SIGTERM") in instructions
    env = " ".join(args for kw, args in instructions if kw == "ENV")
    assert "ORDERFLOW_SEEDS_DIR=/app/seeds" in env
    workdirs = [args for kw, args in instructions if kw == "WORKDIR"]
    assert workdirs[-1] == "/app"


def test_dockerignore_keeps_the_context_small_but_not_the_sources() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv"} <= patterns
    for kw, args in dockerfile_instructions():
        if kw == "COPY":
            for src in args.split()[:-1]:
                assert src not in patterns, f"{src} is copied but ignored"


def test_the_cli_runs_orderflow_commands() -> None:
    cli = services()["cli"]
    assert "entrypoint" not in cli, "`run --rm cli orderflow demo` would double the command"
    assert cli.get("profiles"), "the cli is a run-only service"


# ================================================================================= exposure


def test_published_ports_listen_on_localhost_unless_the_operator_says_otherwise() -> None:
    published = []
    for name, service in services().items():
        for port in service.get("ports", []):
            parts = resolve(port).split(":")
            if len(parts) == 3:
                published.append((name, parts[0]))
            else:
                published.append((name, "0.0.0.0" if len(parts) == 2 else "-"))
    assert published, "no service publishes a port"
    assert {host for _, host in published if host != "-"} == {"127.0.0.1"}, published


def test_the_database_password_has_no_default() -> None:
    text = COMPOSE_FILE.read_text()
    uses = re.findall(r"\$\{POSTGRES_PASSWORD([^}]*)\}", text)
    assert uses and all(u.startswith(":?") for u in uses), uses
    assert "POSTGRES_PASSWORD" in DEPLOY_README.read_text()
