"""`botloom knowledge add|list|remove|search`: manage the index the bot answers from."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.knowledge.ingest import document_id
from bot.knowledge.setup import Knowledge, build_knowledge
from bot.settings import Settings
from bot.storage.errors import StorageUnavailable
from dialogs.answer.knowledge_stage import CANDIDATES
from dialogs.knowledge.meaning import answers


def add_knowledge_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    knowledge = commands.add_parser(
        "knowledge", help="index documents the bot answers from (BOTLOOM_KNOWLEDGE_STORE)"
    )
    verbs = knowledge.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser("add", help="index files and folders (.md .txt .html .pdf .docx)")
    add.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    verbs.add_parser("list", help="the indexed documents")
    remove = verbs.add_parser("remove", help="remove documents by path or id")
    remove.add_argument("targets", nargs="+", metavar="PATH|ID")
    search = verbs.add_parser("search", help="print the passages a question retrieves")
    search.add_argument("query")
    search.add_argument("--limit", type=int, default=5)


async def run_knowledge(settings: Settings, args: argparse.Namespace) -> int:
    """Exit status 0; 1 when a named document was not found or some files were skipped;
    2 when the store cannot be reached."""
    knowledge = build_knowledge(settings)
    try:
        await knowledge.store.open()
        return await _run(knowledge, args)
    except StorageUnavailable as error:
        print(f"botloom: {error}", file=sys.stderr)
        return 2
    finally:
        await knowledge.close()


async def _run(knowledge: Knowledge, args: argparse.Namespace) -> int:
    store = knowledge.store
    if args.verb == "add":
        report = await knowledge.ingestion(progress=print).add(args.paths)
        print(f"knowledge: {report.summary()}")
        return 1 if report.skipped else 0
    if args.verb == "list":
        documents = await store.documents()
        for document in documents:
            print(
                f"{document.id}  {document.chunks:5d} chunks  {document.title}  ({document.source})"
            )
        print(f"{len(documents)} documents")
        return 0
    if args.verb == "remove":
        status = 0
        for target in args.targets:
            ids = {target, document_id(_resolved(target))}
            removed = [i for i in ids if await store.remove(i)]
            print(f"removed {target}" if removed else f"not in the index: {target}")
            status = status if removed else 1
        return status
    scored = await knowledge.retriever.scored(args.query, max(args.limit, CANDIDATES))
    if not scored:
        print("no passages (is the index empty?)")
        return 0
    candidate = {(p.document_id, p.text): relevant for p, relevant in scored}
    ranked = await knowledge.ranker.scored(args.query, [p for p, _ in scored])
    bar = knowledge.ranker.options.min_score
    options = knowledge.ranker.options
    answered, answered_chunk = options.answered_min_score, options.answered_chunk_score
    print("chunk: the whole passage's similarity to the question (passes the retriever's")
    print(
        f"thresholds, or not); sentence: its best sentence's (relevant by meaning from {bar:.2f});"
    )
    print("by: which search found it. The dialog keeps the first passed passage unless one")
    print("relevant by meaning beats it on sentence + chunk score (docs/knowledge.md);")
    print(
        f"a passage whose best sentence scores under {answered:.2f} and whole chunk under "
        f"{answered_chunk:.2f} answers nothing asked (not used)."
    )
    for rank, passage in enumerate(ranked[: args.limit], 1):
        sentence = passage.sentence_score or 0.0
        if not candidate[(passage.document_id, passage.text)]:
            mark = "  (below the candidate threshold: not used)"
        elif not answers(passage, args.query, options):
            mark = "  (answers nothing asked: not used)"
        elif passage.passed:
            mark = "  (passes the chunk threshold)"
        elif sentence >= bar:
            mark = "  (relevant by meaning)"
        else:
            mark = "  (below both thresholds: not used)"
        where_in = f" [{passage.location}]" if passage.location else ""
        print(
            f"{rank}. sentence {sentence:.3f}  chunk {passage.score:.3f}  "
            f"by {passage.found_by or '-'}  {passage.title}{where_in} ({passage.source}){mark}"
        )
        print(f"   {passage.focus[:300]}")
    return 0


def _resolved(target: str) -> str:
    return str(Path(target).expanduser().resolve())
