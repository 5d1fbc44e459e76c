"""Build a release: every artifact of one version in release/<version>/, with SHA256SUMS.

    python -m scripts.release.release [--out release] [--allow-dirty]

Writes ``release/<VERSION>/``:

    functions.zip                                   the Lambda code (any architecture)
    layer-arm64.zip, layer-x86_64.zip               the dependencies layer per architecture
    layer-jwks-arm64.zip, layer-jwks-x86_64.zip     cryptography, for jwks token mode (lambda_jwks_layer_zip)
    realtime-events-client-<v>.tgz                  the browser client (npm)
    realtime_events_client-<v>-py3-none-any.whl     the Python client
    realtime_events_publisher-<v>-py3-none-any.whl  the Python publisher SDK
    SHA256SUMS                                      `sha256sum -c SHA256SUMS` checks them

A rebuild of the same commit gives the same bytes: the zips are deterministic
(scripts/release/build.py), so is esbuild's bundle of the browser client (`make release`
builds it first) and npm pack fixes its timestamps, and the wheels take theirs from the
last commit (SOURCE_DATE_EPOCH). The version is VERSION; every
package manifest must state the same one. Tagging stays with you: the script
prints the command.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from scripts.release import build

ROOT = Path(__file__).resolve().parents[2]
VERSION_FILE = ROOT / "VERSION"
NPM_PACKAGE = ROOT / "clients" / "js"
# What the npm package ships: esbuild's bundle of clients/js/src (`make build-js`; git-ignored).
JS_BUNDLE = NPM_PACKAGE / "dist" / "realtime.js"
JS_SOURCES = NPM_PACKAGE / "src"
PYTHON_PACKAGES = [ROOT / "clients" / "python" / name for name in ("realtime_client", "realtime_publisher")]
ARCHITECTURES = ("arm64", "x86_64")
SUMS_FILE = "SHA256SUMS"


def version() -> str:
    return VERSION_FILE.read_text().strip()


def manifest_versions() -> dict[Path, str]:
    """The version each package manifest states (they must all equal VERSION)."""
    found = {NPM_PACKAGE / "package.json": json.loads((NPM_PACKAGE / "package.json").read_text())["version"]}
    for pyproject in [ROOT / "pyproject.toml", *(package / "pyproject.toml" for package in PYTHON_PACKAGES)]:
        found[pyproject] = tomllib.loads(pyproject.read_text())["project"]["version"]
    return found


def check_versions() -> str:
    expected = version()
    wrong = {path: stated for path, stated in manifest_versions().items() if stated != expected}
    if wrong:
        listing = "\n".join(f"  {path.relative_to(ROOT)}: {stated}" for path, stated in wrong.items())
        sys.exit(f"VERSION says {expected}, but these manifests differ; set them to {expected}:\n{listing}")
    return expected


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def source_date_epoch() -> str:
    """The last commit's time: the timestamp inside the wheels, so a rebuild of a commit is identical."""
    return git("log", "-1", "--format=%ct")


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command[:3])} failed in {cwd.relative_to(ROOT)}:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def check_js_bundle() -> None:
    """Stop unless the bundle exists and is newer than every module it is built from: `make release`
    builds it first (esbuild's output is deterministic, so the tarball stays byte-reproducible)."""
    hint = "run `make build-js` (make release does)"
    if not JS_BUNDLE.is_file():
        sys.exit(f"{JS_BUNDLE.relative_to(ROOT)} is missing: {hint}")
    built = JS_BUNDLE.stat().st_mtime
    stale = sorted(str(path.relative_to(ROOT)) for path in JS_SOURCES.glob("*.js") if path.stat().st_mtime > built)
    if stale:
        sys.exit(f"{JS_BUNDLE.relative_to(ROOT)} is older than {', '.join(stale)}: {hint}")


def pack_npm(out_dir: Path) -> Path:
    """`npm pack` of the browser client, its bundle built beforehand (npm fixes every timestamp in the
    tarball itself)."""
    check_js_bundle()
    out_dir.mkdir(parents=True, exist_ok=True)
    packed = json.loads(run(["npm", "pack", "--json", "--pack-destination", str(out_dir)], cwd=NPM_PACKAGE))
    return out_dir / packed[0]["filename"]


def build_wheels(out_dir: Path, epoch: str) -> list[Path]:
    """The Python distributions' wheels, built with the dev venv's hatchling (offline, no isolation)."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": epoch}
    wheels = []
    for package in PYTHON_PACKAGES:
        with tempfile.TemporaryDirectory(prefix="wheel-") as tmp:
            command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", tmp, "."]
            run(command, cwd=package, env=env)
            (wheel,) = Path(tmp).glob("*.whl")
            wheels.append(Path(shutil.move(wheel, out_dir / wheel.name)))
    return wheels


def build_zips(out_dir: Path) -> list[Path]:
    """functions.zip and both layers per architecture, through scripts/release/build.py (its layer cache in dist/)."""
    zips = []
    for arch in ARCHITECTURES:
        built = build.build(arch, ROOT / "dist")
        zips.append(Path(shutil.copyfile(built["layer"], out_dir / f"layer-{arch}.zip")))
        zips.append(Path(shutil.copyfile(built["jwks_layer"], out_dir / f"layer-jwks-{arch}.zip")))
    # The code zip holds no compiled code, so the last architecture's is everyone's.
    zips.append(Path(shutil.copyfile(built["code"], out_dir / "functions.zip")))
    return zips


def write_sums(out_dir: Path, files: list[Path]) -> Path:
    lines = [f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n" for path in sorted(files)]
    target = out_dir / SUMS_FILE
    target.write_text("".join(lines))
    return target


def release(out: Path, allow_dirty: bool = False) -> Path:
    release_version = check_versions()
    dirty = git("status", "--porcelain", "--untracked-files=no")
    if dirty and not allow_dirty:
        sys.exit(
            "the work tree has uncommitted changes, so this release would match no commit:\n"
            f"{dirty}\ncommit them (or stash them), or pass --allow-dirty (RELEASE_ALLOW_DIRTY=1) for a trial build"
        )
    out_dir = out / release_version
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    print(f"==> Release {release_version} into {out_dir}")
    files = [*build_zips(out_dir), pack_npm(out_dir), *build_wheels(out_dir, source_date_epoch())]
    sums = write_sums(out_dir, files)
    for path in sorted([*files, sums]):
        print(f"  {path.stat().st_size:>12,}  {path.name}")
    print(f"==> Check: (cd {out_dir} && sha256sum -c {SUMS_FILE})")
    tag = f"v{release_version}"
    print(f"==> Tag the commit: git tag -a {tag} -m {tag} && git push origin {tag}")
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "release")
    parser.add_argument("--allow-dirty", action="store_true", help="build from uncommitted changes (a trial)")
    args = parser.parse_args()
    release(args.out.resolve(), args.allow_dirty)


if __name__ == "__main__":
    main()
