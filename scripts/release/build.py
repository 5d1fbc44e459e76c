"""Build the Lambda code zip and the dependencies layer zip, deterministically.

    python -m scripts.release.build [--arch arm64|x86_64|host] [--out dist] [--force]

Writes ``<out>/<arch>/functions.zip`` (the ``realtime`` package, all handlers)
and ``<out>/<arch>/layer.zip`` (``python/`` with functions/requirements.txt
installed for the Lambda python3.12 runtime on that architecture).

Both zips are byte-identical when their inputs are unchanged: entries are
sorted, timestamps and permissions fixed, caches left out. The layer is only
rebuilt when its inputs change (requirements, architecture, this script), as
pip is the slow part; ``--force`` rebuilds it anyway.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

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


def with_bytecode(entries: list[tuple[str, Path]], work: Path) -> list[tuple[str, Path]]:
    """`entries` and, beside each module, its bytecode for the python3.12 runtime.

    Lambda's /var/task and /opt are read-only, so Python cannot cache what it compiles there:
    without these, every cold start compiles every module it imports (make bench, "Cold start").
    Unchecked-hash pycs (PEP 552) are used as they are, whatever the files' times (the zips'
    are fixed at 1980), and are the same bytes on every build.
    """
    if sys.version_info[:2] != tuple(int(part) for part in PYTHON_VERSION.split(".")):
        sys.exit(f"the build compiles for python{PYTHON_VERSION}: run it with that interpreter (make build does)")
    tag = sys.implementation.cache_tag
    compiled = []
    for arcname, source in entries:
        if not arcname.endswith(".py"):
            continue
        folder, _, name = arcname.rpartition("/")
        pyc = f"{folder}/__pycache__/{name[:-3]}.{tag}.pyc".lstrip("/")
        try:
            py_compile.compile(
                str(source),
                cfile=str(work / pyc),
                dfile=arcname,  # not the build's path; the import system points tracebacks at the real file
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
        except py_compile.PyCompileError:
            continue  # a file no import reaches (templates, other Pythons' code): left to its source
        compiled.append((pyc, work / pyc))
    return entries + compiled


def build_code(out_dir: Path) -> Path:
    package_dir = FUNCTIONS_DIR / PACKAGE
    entries = [(p.relative_to(FUNCTIONS_DIR).as_posix(), p) for p in files_under(package_dir)]
    target = out_dir / "functions.zip"
    with tempfile.TemporaryDirectory(prefix="code-") as tmp:
        write_zip(target, with_bytecode(entries, Path(tmp)))
    return target


def layer_key(arch: str) -> str:
    digest = hashlib.sha256()
    for part in (REQUIREMENTS.read_bytes(), arch.encode(), PYTHON_VERSION.encode(), Path(__file__).read_bytes()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def pip_install_layer(arch: str, site_dir: Path) -> None:
    machine = "aarch64" if arch == "arm64" else "x86_64"
    command = [
        sys.executable, "-m", "pip", "install",
        "--quiet", "--disable-pip-version-check", "--no-compile",
        "--target", str(site_dir),
        "--implementation", "cp",
        "--python-version", PYTHON_VERSION,
        "--only-binary=:all:",
        # Every package is pinned, transitive ones included; what the runtime provides
        # (botocore, which aws-xray-sdk asks for) must not come along.
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


def build_layer(out_dir: Path, arch: str, force: bool) -> tuple[Path, bool]:
    target = out_dir / "layer.zip"
    key_file = out_dir / "layer.key"
    key = layer_key(arch)
    if not force and target.exists() and key_file.exists() and key_file.read_text().strip() == key:
        return target, False
    with tempfile.TemporaryDirectory(prefix="layer-") as tmp:
        site_dir = Path(tmp) / "python"
        pip_install_layer(arch, site_dir)
        entries = [(p.relative_to(tmp).as_posix(), p) for p in files_under(site_dir)]
        write_zip(target, with_bytecode(entries, Path(tmp) / "bytecode"))
    key_file.write_text(key + "\n")
    return target, True


def build(arch: str, out: Path, force: bool = False) -> dict[str, Path]:
    arch = host_arch() if arch == "host" else arch
    out_dir = out / arch
    code = build_code(out_dir)
    layer, rebuilt = build_layer(out_dir, arch, force)
    for path, note in ((code, ""), (layer, "" if rebuilt else " (unchanged, reused)")):
        print(
            f"  {path.relative_to(out.parent) if out.is_relative_to(ROOT) else path}  "
            f"{path.stat().st_size / 1024:,.0f} KiB{note}"
        )
    return {"code": code, "layer": layer}


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
