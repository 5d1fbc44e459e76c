"""Build the Lambda code zip and the dependencies layer zip, deterministically.

    python -m scripts.release.build [--arch arm64|x86_64|host] [--out dist] [--force]

Writes ``<out>/<arch>/functions.zip`` (the ``realtime`` package, all handlers),
``<out>/<arch>/layer.zip`` (``python/`` with functions/requirements.txt installed
for the Lambda python3.12 runtime on that architecture) and
``<out>/<arch>/layer-jwks.zip`` (``cryptography`` and what it needs, taken out of
the first: only the token-verifying functions in jwks mode load it, and every
cold start of every function unpacked it).

Powertools is shipped as far as the functions use it: the modules their imports
of it reach (every ``import`` in those modules' source, lazy ones included),
not its event handlers, parser, idempotency and other utilities. The AWS SDK
ships pinned, with botocore's data cut to the services the functions call
(``SDK_SERVICES``): the first client of a cold start lists every service's
folder and parses every service's endpoints, which on the full SDK costs more
than the handlers' own imports.

The layers ship each library module as its bytecode alone, in the module's place
(``with_bytecode``): half the files to unpack; the code zip keeps its sources.

Both zips are byte-identical when their inputs are unchanged: entries are
sorted, timestamps and permissions fixed, caches left out. The layer is only
rebuilt when its inputs change (requirements, architecture, this script), as
pip is the slow part; ``--force`` rebuilds it anyway.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import json
import os
import platform
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = ROOT / "functions"
PACKAGE = "realtime"
REQUIREMENTS = FUNCTIONS_DIR / "requirements.txt"
PYTHON_VERSION = "3.12"
# The python3.12 runtime runs on Amazon Linux 2023 (glibc 2.34): wheels built
# for that glibc or older are usable there.
MANYLINUX_TAGS = ("manylinux_2_34", "manylinux_2_28", "manylinux2014")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
SKIPPED_NAMES = {"__pycache__", ".pytest_cache", ".DS_Store"}
SKIPPED_SUFFIXES = (".pyc", ".pyo")
# Top-level names of the JWKS layer: RSA/EC/EdDSA signatures for PyJWT (realtime.core.auth, jwks mode).
JWKS_TOP_LEVEL = ("cryptography", "cffi", "pycparser", "_cffi_backend")
POWERTOOLS = "aws_lambda_powertools"
# Left out although an import reaches them: Powertools' HTTP routers (2.8 MB, a Swagger UI among them) are
# reached only from `shared.functions.pydantic_to_dict`, which the Logger and Tracer call for a pydantic model
# handed to them to log or to return, and the functions hand them dicts (tests/build/test_import_graph.py:
# no function loads them).
POWERTOOLS_LEFT_OUT = ("aws_lambda_powertools.event_handler",)
# The services realtime.core.aws builds clients for (a build test checks the list against its source).
SDK_SERVICES = ("apigatewaymanagementapi", "dynamodb", "secretsmanager", "sqs", "ssm")


def host_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[machine]


def files_under(base: Path) -> list[Path]:
    """Every file below ``base`` worth shipping, sorted for a stable zip order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_NAMES]
        for name in filenames:
            if name in SKIPPED_NAMES or name.endswith(SKIPPED_SUFFIXES):
                continue
            found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(base).as_posix())


def write_zip(target: Path, entries: list[tuple[str, Path]]) -> None:
    """Write ``entries`` (archive name, source file) with fixed metadata."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for arcname, source in sorted(entries):
            info = zipfile.ZipInfo(arcname, date_time=ZIP_EPOCH)
            executable = os.access(source, os.X_OK) and source.suffix not in {".py", ".pyi", ".txt"}
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            info.create_system = 3  # unix, so the permissions above are honoured
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read_bytes(), compresslevel=9)
    partial.replace(target)


def with_bytecode(
    entries: list[tuple[str, Path]], work: Path, *, sources: bool = True, runtime_dir: str = ""
) -> list[tuple[str, Path]]:
    """`entries` and, beside each module, its bytecode for the python3.12 runtime.

    Lambda's /var/task and /opt are read-only, so Python cannot cache what it compiles there:
    without these, every cold start compiles every module it imports (make bench, "Cold start").
    Unchecked-hash pycs (PEP 552) are used as they are, whatever the files' times (the zips'
    are fixed at 1980), and are the same bytes on every build.

    `sources=False` (the layers): each module that compiles ships as its bytecode alone, in the
    module's place (`client.pyc` for `client.py`, which Python imports without a source), under
    the name it has in the runtime (`runtime_dir` + its path, e.g. /opt/python/botocore/client.py)
    for tracebacks, which show that file and line but not the line's text. Half the files and
    about 30% fewer bytes to unpack; the functions' own code keeps its sources.
    """
    if sys.version_info[:2] != tuple(int(part) for part in PYTHON_VERSION.split(".")):
        sys.exit(f"the build compiles for python{PYTHON_VERSION}: run it with that interpreter (make build does)")
    tag = sys.implementation.cache_tag
    kept, compiled = [], []
    for arcname, source in entries:
        if not arcname.endswith(".py"):
            kept.append((arcname, source))
            continue
        folder, _, name = arcname.rpartition("/")
        pyc = f"{folder}/__pycache__/{name[:-3]}.{tag}.pyc".lstrip("/") if sources else f"{arcname}c"
        try:
            py_compile.compile(
                str(source),
                cfile=str(work / pyc),
                # Beside a source, the import system points tracebacks at the real file; alone, this is the name.
                dfile=arcname if sources else f"{runtime_dir}{arcname}",
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
        except py_compile.PyCompileError:
            kept.append((arcname, source))  # a file no import reaches (templates, other Pythons' code): its source
            continue
        if sources:
            kept.append((arcname, source))
        compiled.append((pyc, work / pyc))
    return kept + compiled


def build_code(out_dir: Path) -> Path:
    package_dir = FUNCTIONS_DIR / PACKAGE
    entries = [(p.relative_to(FUNCTIONS_DIR).as_posix(), p) for p in files_under(package_dir)]
    target = out_dir / "functions.zip"
    with tempfile.TemporaryDirectory(prefix="code-") as tmp:
        write_zip(target, with_bytecode(entries, Path(tmp)))
    return target


def pip_install_layer(arch: str, site_dir: Path) -> None:
    machine = "aarch64" if arch == "arm64" else "x86_64"
    command = [
        sys.executable, "-m", "pip", "install",
        "--quiet", "--disable-pip-version-check", "--no-compile",
        "--target", str(site_dir),
        "--implementation", "cp",
        "--python-version", PYTHON_VERSION,
        "--only-binary=:all:",
        # Every package is pinned, transitive ones included: nothing unlisted comes along.
        "--no-deps",
        "-r", str(REQUIREMENTS),
    ]  # fmt: skip
    for tag in MANYLINUX_TAGS:
        command += ["--platform", f"{tag}_{machine}"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"pip could not install the layer for {arch}:\n{result.stderr}")
    # Console scripts are of no use in a layer. Their RECORD lines go too: the scripts' hashes
    # depend on the build's interpreter path (the shebang), which would tie the layer to the checkout.
    shutil.rmtree(site_dir / "bin", ignore_errors=True)
    for record in site_dir.glob("*.dist-info/RECORD"):
        lines = record.read_bytes().splitlines(keepends=True)
        record.write_bytes(b"".join(line for line in lines if not line.startswith(b"../../bin/")))


def prune_sdk_data(site_dir: Path) -> None:
    """Cut the SDK's data to `SDK_SERVICES`: their folders in botocore/data and boto3/data, and their
    entries in botocore's endpoints.json (every partition, with its regions and defaults, is kept).

    A client's first creation in a process lists every service folder for each kind of file it loads
    (model, endpoint rules, resources) and parses endpoints.json (1.2 MB) whole: on the full SDK that
    is about two thirds of what building the first DynamoDB resource costs (make bench, "Cold start").
    The models that remain are rewritten without their docstring prose, and the examples files go.
    """
    botocore_data = site_dir / "botocore" / "data"
    missing = [name for name in SDK_SERVICES if not (botocore_data / name).is_dir()]
    if missing:
        sys.exit(f"botocore {botocore_data} has no model for {missing}: check SDK_SERVICES")
    for data in (botocore_data, site_dir / "boto3" / "data"):
        for entry in data.iterdir():
            if entry.is_dir() and entry.name not in SDK_SERVICES:
                shutil.rmtree(entry)
    prefixes = set()
    for model in sorted(botocore_data.glob("*/*/service-2.json*")):
        raw = gzip.decompress(model.read_bytes()) if model.suffix == ".gz" else model.read_bytes()
        prefixes.add(json.loads(raw)["metadata"]["endpointPrefix"])
    endpoints_file = botocore_data / "endpoints.json"
    endpoints = json.loads(endpoints_file.read_bytes())
    for partition in endpoints["partitions"]:
        partition["services"] = {name: spec for name, spec in partition["services"].items() if name in prefixes}
    endpoints_file.write_text(json.dumps(endpoints, indent=2) + "\n")
    for model in sorted(botocore_data.glob("*/*/service-2.json*")):
        _write_model_without_documentation(model)
    for examples in botocore_data.glob("*/*/examples-1.json*"):
        examples.unlink()


# Keys of a service model that only feed docstrings and generated docs.
DOCUMENTATION_KEYS = frozenset({"documentation", "documentationUrl"})


def _without_documentation(node: Any) -> Any:
    if isinstance(node, dict):
        # A string only: a member of a shape may be named "documentation" too.
        return {
            key: _without_documentation(value)
            for key, value in node.items()
            if not (key in DOCUMENTATION_KEYS and isinstance(value, str))
        }
    if isinstance(node, list):
        return [_without_documentation(value) for value in node]
    return node


def _write_model_without_documentation(model: Path) -> None:
    """Rewrite a service model (service-2.json[.gz]) as plain, compact JSON without its documentation.

    A client parses its whole model when it is built: DynamoDB's is 556 KB, four fifths of it
    prose for docstrings (SSM's 948 KB). Without it, and not gzipped, the first DynamoDB client
    of a cold start is built about 3.5 ms sooner (docs/internals.md, "Cold starts"). Only docstrings change:
    botocore reads no documentation to validate, serialize or parse."""
    raw = gzip.decompress(model.read_bytes()) if model.suffix == ".gz" else model.read_bytes()
    plain = model.with_name("service-2.json")
    model.unlink()
    plain.write_text(json.dumps(_without_documentation(json.loads(raw)), separators=(",", ":")))


def _imported_modules(source: Path, module: str, is_package: bool) -> set[str]:
    """Every module name an `import` in this file names (absolute, relative resolved), wherever it sits
    (in functions and `try` blocks too), but for those under `if TYPE_CHECKING:`, which never run."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from package import submodule`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source.read_bytes(), str(source)))
    return names


def powertools_used(site_dir: Path, roots: set[str]) -> set[Path]:
    """The files of Powertools that importing `roots` can reach: their modules, the packages above them,
    and, from each, what its source imports (closed over); with each kept package's data files."""

    def file_of(name: str) -> tuple[Path, bool] | None:
        path = site_dir.joinpath(*name.split("."))
        if (path / "__init__.py").is_file():
            return path / "__init__.py", True
        if path.with_suffix(".py").is_file():
            return path.with_suffix(".py"), False
        return None

    kept: set[Path] = set()
    pending = list(roots)
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
            module = ".".join(parts[:depth])
            if module in seen or not module.startswith(POWERTOOLS) or module.startswith(POWERTOOLS_LEFT_OUT):
                continue
            seen.add(module)
            found = file_of(module)
            if found is None:
                continue  # a name imported from a module, not a module
            source, is_package = found
            kept.add(source)
            if is_package:  # data files (py.typed, JSON, templates) of a kept package
                kept.update(p for p in source.parent.iterdir() if p.is_file() and p.suffix != ".py")
            pending.extend(_imported_modules(source, module, is_package))
    return kept


def functions_powertools_imports() -> set[str]:
    """The Powertools modules the functions' source imports."""
    names: set[str] = set()
    for source in (FUNCTIONS_DIR / PACKAGE).rglob("*.py"):
        module = ".".join(source.relative_to(FUNCTIONS_DIR).with_suffix("").parts)
        names.update(
            n for n in _imported_modules(source, module, source.name == "__init__.py") if n.startswith(POWERTOOLS)
        )
    return names


def layer_key(arch: str) -> str:
    digest = hashlib.sha256()
    powertools_imports = "\n".join(sorted(functions_powertools_imports())).encode()
    parts = (
        REQUIREMENTS.read_bytes(),
        arch.encode(),
        PYTHON_VERSION.encode(),
        Path(__file__).read_bytes(),
        powertools_imports,
    )
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def build_layer(out_dir: Path, arch: str, force: bool) -> tuple[dict[str, Path], bool]:
    targets = {"layer": out_dir / "layer.zip", "jwks_layer": out_dir / "layer-jwks.zip"}
    key_file = out_dir / "layer.key"
    key = layer_key(arch)
    fresh = all(target.exists() for target in targets.values())
    if not force and fresh and key_file.exists() and key_file.read_text().strip() == key:
        return targets, False
    with tempfile.TemporaryDirectory(prefix="layer-") as tmp:
        site_dir = Path(tmp) / "python"
        pip_install_layer(arch, site_dir)
        prune_sdk_data(site_dir)
        used = powertools_used(site_dir, functions_powertools_imports())
        layer, jwks = [], []
        for path in files_under(site_dir):
            top = path.relative_to(site_dir).parts[0]
            if top == POWERTOOLS and path not in used:
                continue
            entry = (path.relative_to(tmp).as_posix(), path)
            if top.split("-")[0].split(".")[0] in JWKS_TOP_LEVEL:  # the package, its .dist-info, a module's .so
                jwks.append(entry)
            else:
                layer.append(entry)
        # Lambda unpacks every layer into /opt.
        for target, entries, work in ((targets["layer"], layer, "bytecode"), (targets["jwks_layer"], jwks, "jwks")):
            write_zip(target, with_bytecode(entries, Path(tmp) / work, sources=False, runtime_dir="/opt/"))
    key_file.write_text(key + "\n")
    return targets, True


def build(arch: str, out: Path, force: bool = False) -> dict[str, Path]:
    arch = host_arch() if arch == "host" else arch
    out_dir = out / arch
    code = build_code(out_dir)
    layers, rebuilt = build_layer(out_dir, arch, force)
    note = "" if rebuilt else " (unchanged, reused)"
    for path, said in ((code, ""), (layers["layer"], note), (layers["jwks_layer"], note)):
        print(
            f"  {path.relative_to(out.parent) if out.is_relative_to(ROOT) else path}  "
            f"{path.stat().st_size / 1024:,.0f} KiB{said}"
        )
    return {"code": code, **layers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="arm64", choices=["arm64", "x86_64", "host"])
    parser.add_argument("--out", default=str(ROOT / "dist"), type=Path)
    parser.add_argument("--force", action="store_true", help="rebuild the layer even if its inputs are unchanged")
    args = parser.parse_args()
    arch = host_arch() if args.arch == "host" else args.arch
    print(f"==> Building Lambda zips for {arch} (python{PYTHON_VERSION})")
    build(arch, args.out.resolve(), args.force)


if __name__ == "__main__":
    main()
