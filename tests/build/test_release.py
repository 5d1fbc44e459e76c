"""The client packages of a release: one version everywhere, the same bytes when rebuilt, and they
install and import in clean environments (the zips have their own tests in test_build.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from scripts.release import release

ROOT = Path(__file__).resolve().parents[2]
# `make install` fills it with the wheels of clients/python/requirements.txt: pip needs no index.
WHEELHOUSE = ROOT / ".venv" / "wheelhouse"
TSC = ROOT / "node_modules" / ".bin" / "tsc"
VERSION = release.version()


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> list[Path]:
    return release.build_wheels(tmp_path_factory.mktemp("wheels"), release.source_date_epoch())


@pytest.fixture(scope="module")
def npm_tarball(tmp_path_factory) -> Path:
    return release.pack_npm(tmp_path_factory.mktemp("npm"))


def touch_sources() -> None:
    """A fresh mtime on every packaged source: a rebuild must not change a byte for it."""
    for package in [release.NPM_PACKAGE, *release.PYTHON_PACKAGES]:
        for source in package.iterdir():
            if source.is_file():
                os.utime(source)


def test_every_manifest_states_the_version_file():
    assert set(release.manifest_versions().values()) == {VERSION}


def test_wheels_are_byte_identical_when_rebuilt(tmp_path, wheels):
    touch_sources()
    again = release.build_wheels(tmp_path, release.source_date_epoch())
    assert [path.name for path in again] == [path.name for path in wheels]
    assert [path.read_bytes() for path in again] == [path.read_bytes() for path in wheels]


def test_npm_tarball_is_byte_identical_when_rebuilt(tmp_path, npm_tarball):
    touch_sources()
    assert release.pack_npm(tmp_path).read_bytes() == npm_tarball.read_bytes()


def test_the_bundle_is_byte_identical_when_rebuilt():
    """esbuild's output is deterministic: the same sources give the same bundle, so the same tarball."""
    before = release.JS_BUNDLE.read_bytes()
    # -W: as if index.js had changed, so make runs the bundle's own rule (atomically replaced) and nothing else.
    make = ["make", "--no-print-directory", "-W", "clients/js/src/index.js", "clients/js/dist/realtime.js"]
    subprocess.run(make, cwd=ROOT, check=True, capture_output=True)
    assert release.JS_BUNDLE.read_bytes() == before


def test_npm_tarball_ships_the_bundle_its_types_and_readme(npm_tarball):
    with tarfile.open(npm_tarball) as tarball:
        names = sorted(tarball.getnames())
        shipped = tarball.extractfile("package/dist/realtime.js").read()
    expected = ("LICENSE", "README.md", "dist/realtime.js", "package.json", "realtime.d.ts")
    assert names == [f"package/{name}" for name in expected]
    assert shipped == release.JS_BUNDLE.read_bytes()


def test_pack_npm_refuses_a_missing_or_stale_bundle(tmp_path, monkeypatch):
    sources = tmp_path / "src"
    sources.mkdir()
    monkeypatch.setattr(release, "JS_SOURCES", sources)
    monkeypatch.setattr(release, "JS_BUNDLE", release.NPM_PACKAGE / "dist" / "absent.js")
    with pytest.raises(SystemExit, match=r"clients/js/dist/absent\.js is missing: run `make build-js`"):
        release.pack_npm(tmp_path / "out")

    bundle = tmp_path / "realtime.js"
    bundle.write_text("export {};\n")
    monkeypatch.setattr(release, "ROOT", tmp_path)
    monkeypatch.setattr(release, "JS_BUNDLE", bundle)
    (sources / "client.js").write_text("// edited after the build\n")
    os.utime(bundle, (1_000_000_000, 1_000_000_000))
    with pytest.raises(SystemExit, match=r"realtime\.js is older than src/client\.js: run `make build-js`"):
        release.pack_npm(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_wheels_hold_the_packages_and_nothing_of_the_repository(wheels):
    names = {wheel.name.split("-")[0]: zipfile.ZipFile(wheel).namelist() for wheel in wheels}
    assert sorted(names) == ["realtime_events_client", "realtime_events_publisher"]
    for files in names.values():
        packaged = {name.split("/")[0] for name in files if not name.split("/")[0].endswith(".dist-info")}
        assert packaged <= {"realtime_client", "realtime_publisher"}
        assert not [name for name in files if name.endswith(("pyproject.toml", ".pyc", "README.md"))]


def test_wheels_install_and_import_in_a_clean_venv(tmp_path, wheels):
    """pip installs each wheel with its declared dependencies from the wheelhouse alone (no index), so a
    dependency missing from a pyproject.toml fails the import; the repository is not on the path."""
    assert WHEELHOUSE.is_dir(), f"{WHEELHOUSE} is missing: `make install` downloads it"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    python = venv / "bin" / "python"
    env = {"PATH": os.environ["PATH"], "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    install = [python, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", WHEELHOUSE, *wheels]
    subprocess.run(install, check=True, env=env, cwd=tmp_path)
    script = (
        "import json, importlib.metadata as metadata\n"
        "import realtime_client, realtime_publisher\n"
        "from realtime_publisher import Publisher\n"
        "from realtime_client import RealtimeClient\n"
        "print(json.dumps({\n"
        "    'files': [realtime_client.__file__, realtime_publisher.__file__],\n"
        "    'versions': [metadata.version(n) for n in ('realtime-events-client', 'realtime-events-publisher')],\n"
        "    'publisher_requires': metadata.requires('realtime-events-publisher'),\n"
        "}))\n"
    )
    result = subprocess.run([python, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert all(file.startswith(str(venv)) for file in found["files"]), found["files"]
    assert found["versions"] == [VERSION, VERSION]
    requires = [Requirement(text) for text in found["publisher_requires"]]
    # Publishing needs boto3 alone; PyJWT only with the `tokens` extra (minting).
    assert [r.name for r in requires if r.marker is None] == ["boto3"]
    assert [r.name for r in requires if r.marker is not None and r.marker.evaluate({"extra": "tokens"})] == ["pyjwt"]
    subprocess.run([python, "-m", "pip", "check"], check=True, env=env, cwd=tmp_path, capture_output=True)


CONSUMER = """\
import {
  connect, EventTracker, type RealtimeEvent, type ConnectionState, type LiveRoster, type PresenceMember,
} from 'realtime-events-client';

interface OrderUpdated { orderId: string; status: string }

const client = connect({
  wsUrl: 'wss://example.invalid/live',
  httpUrl: 'https://example.invalid',
  getToken: async () => 'token',
});
client.on('order.updated', (event: RealtimeEvent, meta) => {
  const data = event.data as unknown as OrderUpdated;
  const seq: number = event.seq;
  console.log(data.orderId, seq, meta.transport);
});
client.onState((state: ConnectionState) => console.log(state));
const roster: LiveRoster = client.presenceRoster(['bob']);
roster.onAdded((member: PresenceMember) => console.log(member.userId, member.sessions));
roster.ready.then((r) => console.log([...r.members.keys()]));
export const tracker: EventTracker = new EventTracker();
client.close();
"""

# The same call with a wrong type: the package's types must reject it.
MISUSE = """\
import { connect } from 'realtime-events-client';
connect({ wsUrl: 'wss://example.invalid/live', httpUrl: 'https://example.invalid', getToken: 42 });
"""


@pytest.fixture(scope="module")
def scratch_project(tmp_path_factory, npm_tarball) -> Path:
    """A new npm project with the packed tarball installed: a local file needs no registry."""
    project = tmp_path_factory.mktemp("consumer")
    (project / "package.json").write_text(json.dumps({"name": "consumer", "private": True, "type": "module"}))
    install = ["npm", "install", "--offline", "--no-audit", "--no-fund", "--loglevel=error", str(npm_tarball)]
    subprocess.run(install, cwd=project, check=True, capture_output=True)
    return project


def test_npm_tarball_installs_and_imports_in_node(scratch_project):
    script = (
        "const client = await import('realtime-events-client');"
        "const pkg = JSON.parse((await import('node:fs')).readFileSync("
        "'node_modules/realtime-events-client/package.json', 'utf8'));"
        "console.log(JSON.stringify({exports: Object.keys(client).sort(), version: pkg.version,"
        " dependencies: pkg.dependencies ?? {}}));"
    )
    result = subprocess.run(
        ["node", "--input-type=module", "-e", script], cwd=scratch_project, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert {"connect", "EventTracker", "Backoff", "PresenceTracker"} <= set(found["exports"])
    assert found["version"] == VERSION
    assert found["dependencies"] == {}


def run_tsc(project: Path, source: str) -> subprocess.CompletedProcess:
    (project / "consumer.ts").write_text(source)
    command = [TSC, "--strict", "--noEmit", "--module", "nodenext", "--target", "es2022", "consumer.ts"]
    return subprocess.run(command, cwd=project, capture_output=True, text=True)


def test_a_typescript_consumer_type_checks_with_strict(scratch_project):
    assert TSC.exists(), f"{TSC} is missing: `make install` runs npm ci"
    result = run_tsc(scratch_project, CONSUMER)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_types_reject_a_wrong_option(scratch_project):
    result = run_tsc(scratch_project, MISUSE)
    assert result.returncode != 0
    assert "'number' is not assignable to type '() => string | Promise<string>'" in result.stdout


def test_every_package_carries_the_licence_text_and_a_readme(wheels, npm_tarball):
    licence = (release.ROOT / "LICENSE").read_text()
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            (licence_file,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
            assert archive.read(licence_file).decode() == licence, wheel.name
            metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        assert "License-File: LICENSE" in metadata, wheel.name
        assert "Description-Content-Type: text/markdown" in metadata, f"{wheel.name} has no README"
    with tarfile.open(npm_tarball) as tarball:
        assert tarball.extractfile("package/LICENSE").read().decode() == licence


def test_the_publisher_installs_on_the_pythons_its_code_runs_on(wheels):
    (publisher,) = [w for w in wheels if w.name.startswith("realtime_events_publisher-")]
    with zipfile.ZipFile(publisher) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith("METADATA"))).decode()
    assert "Requires-Python: >=3.11" in metadata
    assert "Provides-Extra: tokens" in metadata
