"""Files several modules' tests start from: certificates made now, and a copy of the
bench tests' project (tests/data/bench)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

BENCH_DATA = Path(__file__).parent / "data" / "bench"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed server certificate and a client certificate, made now."""
    folder = tmp_path_factory.mktemp("certs")
    out = {}
    for name in ("server", "client"):
        key, cert = folder / f"{name}.key", folder / f"{name}.pem"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", str(key), "-out", str(cert), "-days", "2",
                "-subj", f"/CN={name}.test",
                "-addext", f"subjectAltName=DNS:{name}.test,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        out[name + "_key"], out[name] = key, cert
    return out


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """`tmp_path` with a copy of the bench tests' project (its test file and conf)."""
    for item in BENCH_DATA.iterdir():
        if item.is_file():
            shutil.copy(item, tmp_path / item.name)
    return tmp_path
