"""Every package ships the licence text, the same as the repository's."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["clients/js", "clients/python/realtime_client", "clients/python/realtime_publisher"]


def test_every_package_directory_holds_the_repositorys_licence():
    licence = (ROOT / "LICENSE").read_bytes()
    for package in PACKAGES:
        assert (ROOT / package / "LICENSE").read_bytes() == licence, f"{package}/LICENSE differs from LICENSE"
