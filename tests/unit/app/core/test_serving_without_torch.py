"""The serving side (int8 voter A, USE voter B with a numpy head, int8 embedder, graph) runs without torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch
from safetensors.numpy import load_file
from safetensors.torch import save_file

from app.core.voters.heads import MLPHead
from app.core.voters.store import head_logits_fn, numpy_head_fn


class Fixed:
    spec, dim = "fixed", 12

    def encode(self, texts):  # type: ignore[no-untyped-def]
        rng = np.random.default_rng(len(texts))
        return rng.standard_normal((len(texts), self.dim)).astype(np.float32)


def test_numpy_head_gives_the_torch_head_logits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    head = MLPHead(12, 5, hidden=16).eval()
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(tmp_path / "head.safetensors"))
    texts = ["一", "二", "三"]
    want = head_logits_fn(Fixed(), head)(texts)
    got = numpy_head_fn(Fixed(), load_file(str(tmp_path / "head.safetensors")))(texts)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_serving_modules_do_not_import_torch() -> None:
    code = (
        "import sys; import app.service.api, app.core.components, app.core.embedder, app.core.voters.store;"
        "import app.core.voters.onnx, graph.builder;"
        "bad = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
