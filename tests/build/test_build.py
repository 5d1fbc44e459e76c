"""The zips Terraform deploys: reproducible, and complete on their own."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scripts.release import build

ROOT = Path(__file__).resolve().parents[2]
# What the Lambda python3.12 runtime provides besides the standard library.
RUNTIME_PACKAGES = ["boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"]


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


def test_layer_zip_is_byte_identical_when_rebuilt(tmp_path, built):
    again, rebuilt = build.build_layer(tmp_path, build.host_arch(), force=True)
    assert rebuilt
    assert again.read_bytes() == built["layer"].read_bytes()


def test_zips_hold_no_caches_and_fixed_timestamps(built):
    for path in built.values():
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
        assert infos, f"{path.name} is empty"
        assert [info.filename for info in infos] == sorted(info.filename for info in infos)
        assert not [i.filename for i in infos if "__pycache__" in i.filename or i.filename.endswith(".pyc")]
        assert {info.date_time for info in infos} == {build.ZIP_EPOCH}


def test_layer_leaves_boto3_to_the_runtime(built):
    names = zipfile.ZipFile(built["layer"]).namelist()
    assert all(name.startswith("python/") for name in names)
    assert not [name for name in names if name.startswith(("python/boto3/", "python/botocore/"))]


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
    """Import each handler in a clean interpreter that sees only code + layer + runtime SDK.

    The emulator's own packages would hide a missing dependency, so this is the
    guard against a layer that works locally and fails on AWS. With tracing on,
    Powertools Tracer patches the SDK with aws_xray_sdk, which must come from the
    layer; with tracing off (the default), a cold start never imports it.
    """
    zipfile.ZipFile(built["code"]).extractall(tmp_path / "code")
    zipfile.ZipFile(built["layer"]).extractall(tmp_path / "layer")
    runtime = tmp_path / "runtime"
    for package in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(package)
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, runtime / package)
        else:
            runtime.mkdir(exist_ok=True)
            shutil.copy(origin, runtime / origin.name)
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
        "PYTHONPATH": os.pathsep.join([code, str(tmp_path / "layer" / "python"), str(runtime)]),
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


def _terraform_sources() -> str:
    return "\n".join(path.read_text() for path in (ROOT / "terraform").glob("*.tf"))
