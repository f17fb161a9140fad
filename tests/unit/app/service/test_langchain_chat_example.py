"""The README's LangChain chat chain, run exactly as shipped (app/service/lc/chat_example.py) with a fake chat model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage

import app.service.lc.chat_example as example
from app.service.lc import LabelGateRetriever
from app.testing import fake_chat

ROOT = Path(__file__).resolve().parents[4]
SEED = "我的手机屏幕裂了，保修可以换吗？"


class Prompts(BaseCallbackHandler):
    def __init__(self) -> None:
        self.seen: list[list[BaseMessage]] = []

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kw: Any) -> None:
        self.seen.extend(messages)


def example_code() -> str:
    text = Path(example.__file__).read_text(encoding="utf-8")
    start, end = "# --- README example start ---\n", "# --- README example end ---\n"
    return text[text.index(start) + len(start) : text.index(end)].strip()


def test_the_readme_shows_the_example_verbatim() -> None:
    assert example_code() in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_chain_answers_from_the_gated_docs_with_their_ids(components) -> None:  # type: ignore[no-untyped-def]
    reply = "屏幕损坏属于保修范围，可免费更换一次 [D1]。"
    llm = fake_chat(reply)
    prompts = Prompts()
    retriever = LabelGateRetriever(components=components, k=3)
    assert example.chat_chain(retriever, llm).invoke(SEED, {"callbacks": [prompts]}) == reply
    [[system, human]] = prompts.seen
    assert "[编号]" in system.content and SEED in human.content
    lines = human.content.split("<资料>\n")[1].split("\n</资料>")[0].splitlines()
    docs = retriever.invoke(SEED)
    assert lines == [f"[{d.metadata['doc_id']}] title {d.metadata['doc_id']}：{d.page_content}" for d in docs]
    assert len(lines) == 3 and all(line.startswith("[D") for line in lines)
