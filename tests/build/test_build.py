"""The zips Terraform deploys: reproducible, and complete on their own."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import botocore.loaders
import pytest

from scripts.release import build

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    return build.build(build.host_arch(), tmp_path_factory.mktemp("dist"), force=True)


def handler_modules(code_zip: Path) -> list[str]:
    names = zipfile.ZipFile(code_zip).namelist()
    return sorted(
        name[: -len(".py")].replace("/", ".")
        for name in names
        if re.fullmatch(r"realtime/handlers/[a-z_]+\.py", name) and not name.endswith("__init__.py")
    )


def test_code_zip_is_byte_identical_when_nothing_changed(tmp_path, built):
    # A fresh mtime on every source file must not change a byte.
    for source in (ROOT / "functions" / "realtime").rglob("*.py"):
        os.utime(source)
    again = build.build_code(tmp_path)
    assert again.read_bytes() == built["code"].read_bytes()


def test_layer_zips_are_byte_identical_when_rebuilt(tmp_path, built):
    again, rebuilt = build.build_layer(tmp_path, build.host_arch(), force=True)
    assert rebuilt
    assert again["layer"].read_bytes() == built["layer"].read_bytes()
    assert again["jwks_layer"].read_bytes() == built["jwks_layer"].read_bytes()


def test_cryptography_ships_in_the_jwks_layer_only(built):
    def top_level(path):
        return {name.split("/")[1].split("-")[0].split(".")[0] for name in zipfile.ZipFile(path).namelist()}

    jwks = top_level(built["jwks_layer"])
    assert {"cryptography", "cffi", "pycparser", "_cffi_backend"} <= jwks
    assert jwks <= set(build.JWKS_TOP_LEVEL) | {"__pycache__"}
    assert not top_level(built["layer"]) & set(build.JWKS_TOP_LEVEL)


def test_powertools_ships_what_the_functions_import_and_not_its_unused_utilities(built):
    names = zipfile.ZipFile(built["layer"]).namelist()
    unused_utilities = ("idempotency", "feature_flags", "streaming", "data_masking", "kafka", "circuit_breaker")
    # batch and its event classes too: the SQS functions and db-changes build their partial-batch responses.
    for unused in (*unused_utilities, "batch", "data_classes", "parser"):
        assert not any(name.startswith(f"python/aws_lambda_powertools/utilities/{unused}/") for name in names), unused
    assert not any(name.startswith("python/aws_lambda_powertools/event_handler/") for name in names)
    for used in (
        "logging/logger.py",
        "metrics/metrics.py",
        "tracing/tracer.py",
        "utilities/typing/__init__.py",
    ):
        assert f"python/aws_lambda_powertools/{used}c" in names, used  # as bytecode alone


@pytest.mark.parametrize("layers", [("layer",), ("layer", "jwks_layer")], ids=["hs256", "jwks"])
def test_pyjwt_has_its_asymmetric_algorithms_with_the_jwks_layer_only(tmp_path, built, layers):
    paths = []
    for layer in layers:
        zipfile.ZipFile(built[layer]).extractall(tmp_path / layer)
        paths.append(str(tmp_path / layer / "python"))
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(paths)}
    script = "import jwt.algorithms as a; print(a.has_crypto, 'RS256' in a.get_default_algorithms())"
    result = subprocess.run([sys.executable, "-P", "-s", "-S", "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == (["True", "True"] if "jwks_layer" in layers else ["False", "False"])


def test_zips_hold_fixed_timestamps_and_only_the_runtimes_bytecode(built):
    for path in built.values():
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
        assert infos, f"{path.name} is empty"
        assert [info.filename for info in infos] == sorted(info.filename for info in infos)
        assert {info.date_time for info in infos} == {build.ZIP_EPOCH}
        names = {info.filename for info in infos}
        caches = [name for name in names if "__pycache__" in name or name.endswith(".pyo")]
        # Only what the build compiled: one pyc per module, beside it, for the python3.12 runtime.
        expected = {_pyc_of(name) for name in names if name.endswith(".py")}
        assert set(caches) <= expected, sorted(set(caches) - expected)[:5]


def _pyc_of(module: str) -> str:
    folder, _, name = module.rpartition("/")
    return f"{folder}/__pycache__/{name[:-3]}.cpython-312.pyc".lstrip("/")


def _assert_unchecked_bytecode(archive: zipfile.ZipFile, name: str) -> None:
    header = archive.read(name)[:8]
    assert header[:4] == importlib.util.MAGIC_NUMBER, name
    assert int.from_bytes(header[4:8], "little") == 1, f"{name}: not an unchecked-hash pyc"


def test_every_module_ships_bytecode_the_runtime_uses_without_checking(built):
    """Lambda's /var/task and /opt are read-only: Python cannot cache what it compiles there, so
    without bytecode in the zips every cold start compiles every module it imports. Unchecked-hash
    pycs (PEP 552, flags = 1) are used whatever the files' times, which the zips fix at 1980.
    The functions' code keeps its sources beside; the layers ship their modules as bytecode alone."""
    with zipfile.ZipFile(built["code"]) as archive:
        names = set(archive.namelist())
        modules = [name for name in names if name.endswith(".py")]
        assert modules
        assert [name for name in modules if _pyc_of(name) not in names] == []
        for name in modules:
            _assert_unchecked_bytecode(archive, _pyc_of(name))
    for layer in ("layer", "jwks_layer"):
        with zipfile.ZipFile(built[layer]) as archive:
            names = set(archive.namelist())
            sources = [name for name in names if name.endswith(".py")]
            compiled = [name for name in names if name.endswith(".pyc")]
            # A few files no import reaches do not compile (templates, other Pythons' code) and stay sources.
            assert len(sources) <= len(compiled) // 50, sources[:5]
            assert not [name for name in names if "__pycache__" in name]
            for name in compiled:
                _assert_unchecked_bytecode(archive, name)


def test_layer_tracebacks_name_the_files_where_lambda_unpacks_them(tmp_path, built):
    zipfile.ZipFile(built["layer"]).extractall(tmp_path)
    probe = (
        f"import sys; sys.path[:0] = [{str(tmp_path / 'python')!r}]\n"
        "import boto3, traceback\n"
        "try:\n"
        "    boto3.client('not-a-service', region_name='us-east-1')\n"
        "except Exception as error:\n"
        "    print(traceback.extract_tb(error.__traceback__)[-1].filename)\n"
    )
    result = subprocess.run([sys.executable, "-I", "-B", "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("/opt/python/botocore/")


def test_handlers_import_from_the_zips_without_compiling(tmp_path, built):
    """Imported from the unpacked zips with bytecode writing off (as on Lambda), every handler
    module comes from its shipped pyc: nothing is compiled at import."""
    code, layer = tmp_path / "task", tmp_path / "opt"
    zipfile.ZipFile(built["code"]).extractall(code)
    zipfile.ZipFile(built["layer"]).extractall(layer)
    probe = (
        "import importlib, importlib.machinery as m, sys\n"
        "compiled = []\n"
        "original = m.SourceFileLoader.source_to_code\n"
        "def spy(self, data, path, *a, **k):\n"
        "    compiled.append(path)\n"
        "    return original(self, data, path, *a, **k)\n"
        "m.SourceFileLoader.source_to_code = spy\n"
        f"sys.path[:0] = [{str(code)!r}, {str(layer / 'python')!r}]\n"
        f"for name in {handler_modules(built['code'])!r}:\n"
        "    importlib.import_module(name)\n"
        f"print([p for p in compiled if p.startswith(({str(code)!r}, {str(layer)!r}))])\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-B", "-c", probe], capture_output=True, text=True, env=_handler_environment()
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_layer_ships_the_sdk_with_the_data_of_the_services_the_functions_call(built):
    names = zipfile.ZipFile(built["layer"]).namelist()
    assert all(name.startswith("python/") for name in names)
    for package in ("boto3", "botocore", "urllib3", "dateutil", "jmespath"):
        assert f"python/{package}/__init__.pyc" in names, package

    def services(data: str) -> set[str]:
        return {name.split("/")[3] for name in names if name.startswith(f"python/{data}/data/") and name.count("/") > 4}

    assert services("botocore") == set(build.SDK_SERVICES)
    assert services("boto3") <= set(build.SDK_SERVICES)


def test_the_layers_service_models_are_the_sdks_without_their_documentation(built):
    """Each service model in the layer is the installed SDK's (same version, functions/requirements.txt),
    every operation, shape and rule kept, only the prose for docstrings left out."""

    def documentation_left_out(node):
        if isinstance(node, dict):
            prose = ("documentation", "documentationUrl")
            return {k: documentation_left_out(v) for k, v in node.items() if not (k in prose and isinstance(v, str))}
        if isinstance(node, list):
            return [documentation_left_out(v) for v in node]
        return node

    layer = zipfile.ZipFile(built["layer"])
    models = [
        name for name in layer.namelist() if re.fullmatch(r"python/botocore/data/[\w-]+/[\d-]+/service-2\.json", name)
    ]
    assert {name.split("/")[3] for name in models} == set(build.SDK_SERVICES)
    loader = botocore.loaders.Loader()
    for name in models:
        service, version = name.split("/")[3:5]
        shipped = json.loads(layer.read(name))
        whole = loader.load_service_model(service, "service-2", api_version=version)
        assert '"documentation"' not in layer.read(name).decode(), service
        assert whole["operations"], service
        assert shipped == documentation_left_out(whole), service


def test_the_sdk_services_are_those_the_functions_build_clients_for():
    sources = "\n".join(path.read_text() for path in (ROOT / "functions" / "realtime").rglob("*.py"))
    called = set(re.findall(r'boto3\.(?:client|resource)\(\s*"([\w-]+)"', sources))
    assert called == set(build.SDK_SERVICES)


# Endpoint, signing name and region of every service's client, as the functions build them.
RESOLVE = """
import json, sys, boto3
found = {"boto3": boto3.__file__}
for region in ("us-east-1", "eu-west-1", "ap-southeast-2", "cn-north-1", "us-gov-west-1", "eu-isoe-west-1"):
    for service in sys.argv[1:]:
        url = f"https://abc.execute-api.{region}.amazonaws.com/live"
        extra = {"endpoint_url": url} if service == "apigatewaymanagementapi" else {}
        client = boto3.client(service, region_name=region, **extra)
        found[f"{service} {region}"] = [client.meta.endpoint_url, client.meta.region_name,
                                        client.meta.service_model.signing_name, client.meta.partition]
    found[f"dynamodb resource {region}"] = boto3.resource("dynamodb", region_name=region).meta.client.meta.endpoint_url
print(json.dumps(found))
"""


def test_the_cut_sdk_resolves_every_endpoint_as_the_whole_sdk_does(tmp_path, built):
    """The layer's SDK (data cut to SDK_SERVICES) against the same version whole (the test's own, installed
    from functions/requirements.txt): the same endpoints, signing names and partitions in every partition."""
    zipfile.ZipFile(built["layer"]).extractall(tmp_path / "layer")
    layer = str(tmp_path / "layer" / "python")
    env = {"PATH": os.environ["PATH"], "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}

    def resolve(*command: str, path: str = "") -> dict:
        run = subprocess.run(
            [*command, "-c", RESOLVE, *build.SDK_SERVICES],
            env={**env, **({"PYTHONPATH": path} if path else {})},
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)

    cut = resolve(sys.executable, "-P", "-s", "-S", path=layer)
    whole = resolve(sys.executable, "-P")
    assert cut.pop("boto3").startswith(layer)
    assert not whole.pop("boto3").startswith(layer)
    assert cut == whole
    assert cut["dynamodb cn-north-1"][0] == "https://dynamodb.cn-north-1.amazonaws.com.cn"


def test_layer_does_not_depend_on_where_it_was_built(built):
    """Console scripts carry the build interpreter's path: neither they nor their hashes may be packed."""
    with zipfile.ZipFile(built["layer"]) as archive:
        records = [archive.read(name) for name in archive.namelist() if name.endswith(".dist-info/RECORD")]
    assert records
    assert not [record for record in records if b"../../bin/" in record]


def test_every_terraform_handler_is_in_the_code_zip(built):
    declared = set(re.findall(r"realtime\.handlers\.([a-z_]+)\.handler", _terraform_sources()))
    packed = {module.rsplit(".", 1)[1] for module in handler_modules(built["code"])}
    assert declared, "no handler found in terraform/*.tf"
    assert declared <= packed


@pytest.mark.parametrize("tracing", [False, True], ids=["tracing-off", "tracing-on"])
def test_every_handler_imports_from_the_zips_alone(tmp_path, built, tracing):
    """Import each handler in a clean interpreter that sees only code + layer, the SDK included.

    The emulator's own packages would hide a missing dependency, so this is the
    guard against a layer that works locally and fails on AWS. With tracing on,
    Powertools Tracer patches the SDK with aws_xray_sdk, which must come from the
    layer; with tracing off (the default), a cold start never imports it.
    """
    zipfile.ZipFile(built["code"]).extractall(tmp_path / "code")
    zipfile.ZipFile(built["layer"]).extractall(tmp_path / "layer")
    modules = handler_modules(built["code"])
    assert len(modules) >= 6
    code, layer = str(tmp_path / "code"), str(tmp_path / "layer")
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    assert callable(module.handler), name\n"
        f"    assert module.__file__.startswith({code!r}), module.__file__\n"
        "xray = sys.modules.get('aws_xray_sdk')\n"
        "print('imported', len(" + repr(modules) + "), 'xray from', xray and xray.__file__)\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": os.pathsep.join([code, str(tmp_path / "layer" / "python")]),
        # What the module sets; LAMBDA_TASK_ROOT as on Lambda, where Tracer does not switch itself off.
        "POWERTOOLS_TRACE_DISABLED": "false" if tracing else "true",
        "LAMBDA_TASK_ROOT": code,
    }
    # The environment above is all it gets; -P: not the working directory, -s: no user site, -S: no site-packages.
    result = subprocess.run([sys.executable, "-P", "-s", "-S", "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"imported {len(modules)}" in result.stdout
    if tracing:
        assert f"xray from {layer}" in result.stdout
    else:
        assert "xray from None" in result.stdout


def _handler_environment() -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


def _terraform_sources() -> str:
    return "\n".join(path.read_text() for path in (ROOT / "terraform").glob("*.tf"))
