"""Every test double in one place (tests, soaks and benchmarks import them from here): a tiny random-init BERT
encoder with a character tokenizer, keyword voters with known answers, bag-of-characters text encoders, fake chat
models (scripted replies, a timing-out one), and a local stand-in for the LangSmith API. Built on the core only
(an import-linter contract)."""

from __future__ import annotations

import json
import string
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    from app.core.taxonomy import Taxonomy
    from app.core.voters.base import Voter

DEFAULT_CHARS = (
    "我的手机屏幕裂了保修可以换吗电池活动优惠以旧换新套餐推荐物流配送投诉态度差其他天气怎么样碎坏维修进度退货款"
    "系统故障死机卡顿重启升级失败信号新款旗舰赠送延保服务限时耳机壳发票指定门店免费更换一次期内非人为损坏范围"
    "请携带问题购买享虚假宣传赔偿客服店员多少钱什么时候快递到货地址修改自提价格颜色库存上市参数对比流量话费合约"
    "分期股票笑话讲个今天好你吗呢啊吧呀是有在和与或及就都也还要会能，。？！、：；（）"
    + string.ascii_lowercase
    + string.digits
)
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_encoder(
    out_dir: Path, *, texts: Iterable[str] | None = None, seed: int = 0, hidden_size: int = 32, num_layers: int = 2
) -> Path:
    """A random-init BertModel + fast per-character tokenizer that load with the Auto classes (well under a second)."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    chars = sorted(set(DEFAULT_CHARS if texts is None else "".join(texts)) - {" "})
    vocab = {token: i for i, token in enumerate(SPECIALS + chars)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split("", "isolated")]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=128,
        pad_token_id=0,
    )
    BertModel(config).save_pretrained(str(out_dir))
    return out_dir


class FakeLangSmith:
    """A local stand-in for the LangSmith API: answers `/info` (with the full batch_ingest_config the client's tracing
    thread needs) and keeps every run posted to `/runs/multipart`, merged by id. Use as a context manager; point a
    client at `.url` (or LANGSMITH_ENDPOINT) and read `.runs()` after the client flushed."""

    INFO: ClassVar[dict[str, Any]] = {
        "version": "0.0-fake",
        "batch_ingest_config": {
            "size_limit": 100,
            "size_limit_bytes": 20_000_000,
            "scale_up_nthreads_limit": 1,
            "scale_up_qsize_trigger": 1000,
            "scale_down_nempty_trigger": 4,
            "use_multipart_endpoint": True,
        },
    }

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._bodies: list[tuple[str, bytes]] = []  # parsed when read: a benchmark's fake must cost its host little
        self.failing = False  # True: answer run batches with 503, as a LangSmith in trouble would
        self._server: Any = None

    def __enter__(self) -> FakeLangSmith:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, body: bytes, status: int = 200) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._reply(json.dumps(fake.INFO).encode() if self.path.startswith("/info") else b"{}")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if fake.failing:
                    self._reply(b'{"detail": "unavailable"}', status=503)
                    return
                if self.path.startswith("/runs/multipart"):
                    with fake._lock:
                        fake._bodies.append((self.headers.get("Content-Type", ""), body))
                self._reply(b"{}")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-langsmith").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def requests(self) -> int:
        with self._lock:
            return len(self._bodies)

    def runs(self) -> list[dict[str, Any]]:
        """Every run received so far (its post and patch parts merged), in start order."""
        from email.parser import BytesParser
        from email.policy import HTTP

        with self._lock:
            bodies = list(self._bodies)
        runs: dict[str, dict[str, Any]] = {}
        for content_type, body in bodies:
            message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
            for part in message.iter_parts():
                name = str(part.get_param("name", header="content-disposition") or "")
                _op, run_id, *field = name.split(".", 2)
                payload = part.get_payload(decode=True)
                value = json.loads(payload) if isinstance(payload, bytes) and payload else None
                run = runs.setdefault(run_id, {})
                if field:
                    run[field[0]] = value
                elif isinstance(value, dict):
                    run.update(value)
        return sorted(runs.values(), key=lambda run: str(run.get("start_time")))


def keyword_voter(name: str, taxonomy: Taxonomy, keywords: dict[str, list[str]]) -> Voter:
    """A deterministic voter double: logit +4 for a label whose keyword occurs (parents follow), else -4."""
    import numpy as np

    from app.core.voters.base import Voter

    def logits(texts: Sequence[str]) -> np.ndarray:
        out = np.full((len(texts), len(taxonomy.ids)), -4.0, dtype=np.float32)
        for i, text in enumerate(texts):
            for label, words in keywords.items():
                if any(w in text for w in words):
                    out[i, taxonomy.index(label)] = 4.0
                    out[i, taxonomy.index(taxonomy.coarse_of(label))] = 4.0
        return out

    return Voter(name, "test-1", taxonomy.ids, logits, thresholds=dict.fromkeys(taxonomy.ids, 0.5))


class CharEncoder:
    """Bag-of-characters vectors (hashed into `dim` dims, L2-normalised): texts sharing characters are alike; counts
    the texts of each encode call."""

    def __init__(self, spec: str = "char-bag", dim: int = 64) -> None:
        self.spec, self.dim = spec, dim
        self.calls: list[int] = []  # texts per encode call

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for char in text:
                out[row, zlib.crc32(char.encode()) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class RandomCharEncoder:
    """Each character a fixed random unit vector (seeded by the character and the spec), summed and normalised: two
    specs give two different encoders of the same texts."""

    def __init__(self, spec: str, dim: int = 48) -> None:
        self.spec, self.dim = spec, dim

    def _char(self, ch: str) -> np.ndarray:
        import numpy as np

        return np.random.default_rng(ord(ch) * 7919 + len(self.spec)).standard_normal(self.dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        out = np.array([sum((self._char(c) for c in t), np.zeros(self.dim)) for t in texts], dtype=np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def fake_chat(*replies: str) -> GenericFakeChatModel:
    """A chat model that answers with `replies`, one per call, in order."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    return GenericFakeChatModel(messages=iter([AIMessage(content=r) for r in replies]))


def failing_chat(error: Exception | None = None) -> GenericFakeChatModel:
    """A chat model whose every call raises `error` (default: a timeout), as an unreachable LLM does."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    failure = error or TimeoutError("llm timed out")

    class FailingChat(GenericFakeChatModel):
        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            raise failure

    return FailingChat(messages=iter([]))
