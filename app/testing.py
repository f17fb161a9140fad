"""Test doubles shipped with the package: a tiny random-init BERT encoder with a character tokenizer."""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path

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
