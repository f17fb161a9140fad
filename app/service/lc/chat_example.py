"""The README's LangChain example: a chat chain over LabelGateRetriever with any chat model. README.md shows this
file's code verbatim and tests/unit/app/service/test_langchain_chat_example.py runs it, so the two cannot drift."""

# --- README example start ---
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnablePassthrough

from app.service.lc import LabelGateRetriever

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "你是手机门店的客服助手。只根据资料回答，每句依据资料的话后面用 [编号] 标出资料编号。"),
        ("human", "<资料>\n{context}\n</资料>\n\n<问题>\n{question}\n</问题>"),
    ]
)


def format_docs(docs: list[Document]) -> str:
    """One line per retrieved doc, led by the id the answer cites: `[D1] 标题：正文`."""
    return "\n".join(f"[{d.metadata['doc_id']}] {d.metadata['title']}：{d.page_content}" for d in docs)


def chat_chain(retriever: LabelGateRetriever, llm: BaseChatModel) -> Runnable[str, str]:
    """question → gated retrieval → prompt → any chat model → text."""
    return {"context": retriever | format_docs, "question": RunnablePassthrough()} | PROMPT | llm | StrOutputParser()


# --- README example end ---
