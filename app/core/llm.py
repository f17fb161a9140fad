"""Chat model factory: any OpenAI-compatible endpoint (the local llama.cpp server by default, once configured)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from langchain_core.language_models import BaseChatModel

from app.core.config import Settings
from app.core.errors import LabelgateError

log = logging.getLogger(__name__)


def resolve_base_url(settings: Settings) -> str | None:
    """LABELGATE_LLM_BASE_URL, else the bundled local server (started or reused), else None."""
    if settings.llm_base_url or not settings.llm_local:
        return settings.llm_base_url
    from app.core.llm_local import serve

    try:
        return serve(settings).base_url
    except LabelgateError as exc:
        log.warning("no LLM: %s (extract and answer take their recorded fallbacks)", exc)
        return None


def make_chat_model(settings: Settings) -> BaseChatModel | None:
    """ChatOpenAI at the configured endpoint or the local server; None when there is no LLM (nodes fall back)."""
    base_url = resolve_base_url(settings)
    if not base_url:
        return None
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        base_url=base_url,
        api_key=settings.llm_api_key,  # type: ignore[arg-type]
        model=settings.llm_model,
        temperature=0,
        timeout=settings.llm_timeout,
        max_retries=1,
        max_tokens=400,
    )  # type: ignore[call-arg]


def message_text(message: Any) -> str:
    """The text of a chat model reply (string or content-block list)."""
    content = getattr(message, "content", message)
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


def parse_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in a reply (tolerates code fences and chatter); ValueError when there is none."""
    stripped = re.sub(r"^```(?:json)?|```$", "", text.strip(), flags=re.MULTILINE).strip()
    start = stripped.find("{")
    if start < 0:
        raise ValueError("no JSON object in the reply")
    value, _ = json.JSONDecoder().raw_decode(stripped[start:])
    if not isinstance(value, dict):
        raise ValueError("the reply's JSON is not an object")
    return value
