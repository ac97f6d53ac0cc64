"""Files in chat, through the whole bot (a real server, the embedded default model and embedder,
the fake connector serving the files as the Emulator does), on the blind set
bench/data/blind/files/ (written by a helper session that never saw the code; never tune on it):

    PYTHONPATH=. .venv/bin/python bench/files_eval.py [--json FILE] [--set DIR] [--questions-only]

`--set bench/data/dev/files` runs the development set (written the same way, to tune on) instead;
`--questions-only` leaves out the refusals and the 20-page timing.

- questions.jsonl: each question in a new conversation, sent with its document attached (a
  follow-up in its question's conversation, after it); the fact is in the reply when one of
  `facts` is in its text (the Sources line left out); the file is cited when the Sources line
  names the document;
- privacy: each question again in another conversation without the file: never answered from
  it (no fact, no citation of the file); this is also the bot without the file (before files
  could be read, every upload got "I can only read text messages for now.");
- uncovered.jsonl: with all three documents attached, questions none answers: how many replies
  cite a file anyway;
- refusals: an image, a zip, a 40 MB file (streamed without Content-Length: bytes the server
  could send before the bot stopped reading) and a contentUrl on another origin (requests it got);
- the time from upload to "ready" for a generated 20-page PDF.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot.app import RUNTIME, create_app
from bot.settings import Settings
from tests.activities import message
from tests.connector import FakeConnector
from tests.knowledge.pdf_files import text_pdf

HERE = Path(__file__).resolve().parent
SET = HERE / "data" / "blind" / "files"
RESULTS = HERE / "results" / "files-blind.json"
TYPES = {".pdf": "application/pdf", ".md": "text/markdown", ".docx": ""}
MB = 1024 * 1024


def load(folder: Path, name: str) -> list[dict[str, Any]]:
    lines = (folder / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def split(reply: str) -> tuple[str, str]:
    """The reply's text and its Sources line."""
    text, _, sources = reply.partition("\n\nSources:")
    return text, sources


class Harness:
    def __init__(self, client: TestClient, connector: FakeConnector, docs: Path) -> None:
        self.client, self.connector, self.docs = client, connector, docs

    def attachment(self, document: str) -> dict[str, str]:
        path = self.docs / document
        if document not in self.connector.files:
            self.connector.serve_file(document, path.read_bytes(), TYPES[path.suffix])
        url = f"{self.connector.url}/files/{document}"
        return {"contentType": TYPES[path.suffix], "contentUrl": url, "name": document}

    async def send(
        self, conversation: str, text: str | None, replies: int, attachments: list | None = None
    ) -> list[str]:
        before = len(self.connector.messages(conversation))
        extra = {"attachments": attachments} if attachments else {}
        activity = message(text, service_url=self.connector.url, conversation=conversation, **extra)
        response = await self.client.post("/api/messages", json=activity)
        assert response.status in (200, 201, 202), await response.text()
        found = await self.connector.wait_for_messages(before + replies, conversation, 1800)
        return [m.get("text") or "" for m in found[before:]]


async def ask(h: Harness, item: dict[str, Any], follows: dict[str, Any] | None) -> dict[str, Any]:
    document = item["document"]
    if follows is None:
        _, reply = await h.send(f"c-{item['id']}", item["question"], 2, [h.attachment(document)])
    else:
        [reply] = await h.send(f"c-{follows['id']}", item["question"], 1)
    [other] = await h.send(f"other-{item['id']}", item["question"], 1)
    text, sources = split(reply)
    other_text, other_sources = split(other)
    return {
        "id": item["id"],
        "kind": item["kind"],
        "fact": any(f.lower() in text.lower() for f in item["facts"]),
        "cited": document in sources,
        "other_fact": any(f.lower() in other_text.lower() for f in item["facts"]),
        "other_cited": document in other_sources,
        "reply": reply,
        "other": other,
    }


async def refusals(h: Harness) -> dict[str, Any]:
    c = h.connector
    image = {"contentType": "image/png", "contentUrl": c.serve_file("p.png"), "name": "p.png"}
    archive = {
        "contentType": "application/zip",
        "contentUrl": c.serve_file("a.zip"),
        "name": "a.zip",
    }
    big_url = c.serve_file("big.pdf", size=40 * MB, length_header=False)
    big = {"contentType": "application/pdf", "contentUrl": big_url, "name": "big.pdf"}
    elsewhere = FakeConnector()
    await elsewhere.start()
    try:
        foreign_url = elsewhere.serve_file("f.pdf", b"%PDF-1.4", "application/pdf")
        foreign = {"contentType": "application/pdf", "contentUrl": foreign_url, "name": "f.pdf"}
        out = {}
        for name, attachment in [
            ("image", image),
            ("zip", archive),
            ("40 MB", big),
            ("foreign", foreign),
        ]:
            started = time.perf_counter()
            [reply] = await h.send(f"refuse-{name}", None, 1, [attachment])
            out[name] = {"reply": reply, "seconds": round(time.perf_counter() - started, 2)}
        out["requests_for_image_zip"] = [n for n in c.file_requests if n in ("p.png", "a.zip")]
        out["40 MB"]["bytes_sent_by_server"] = c.file_bytes_sent.get("big.pdf")
        out["foreign"]["requests"] = len(elsewhere.file_requests)
        return out
    finally:
        await elsewhere.close()


def twenty_pages() -> bytes:
    pages = []
    for p in range(1, 21):
        pages.append([
            f"Unit {p * 100 + i} at depot {p} is inspected every {i + 2} weeks by crew {i % 7}; "
            f"its log book is kept in cabinet {p}-{i}."
            for i in range(1, 41)
        ])  # fmt: skip
    return text_pdf(pages, title="Twenty pages")


async def ready_time(h: Harness) -> dict[str, Any]:
    url = h.connector.serve_file("twenty-pages.pdf", twenty_pages(), "application/pdf")
    attachment = {"contentType": "application/pdf", "contentUrl": url, "name": "twenty-pages.pdf"}
    started = time.perf_counter()
    [ack] = await h.send("timing", None, 1, [attachment])
    return {"seconds": round(time.perf_counter() - started, 2), "ack": ack}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--set", type=Path, default=SET, help="the set's folder (the blind set)")
    parser.add_argument("--questions-only", action="store_true", help="no refusals, no timing")
    parser.add_argument("--temperature", help="BOTLOOM_TEMPERATURE (default: the bot's default)")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="BOTLOOM_NAME=VALUE",
        help="another setting for the bot (e.g. a relevance bar, for a before/after run)",
    )
    args = parser.parse_args()
    questions, uncovered = load(args.set, "questions.jsonl"), load(args.set, "uncovered.jsonl")
    by_id = {q["id"]: q for q in questions}
    with tempfile.TemporaryDirectory() as folder:
        environ = {"BOTLOOM_STORAGE": f"sqlite:///{folder}/state.db"}
        environ |= {"BOTLOOM_GENERATION_TIMEOUT_S": "1800", "BOTLOOM_TURN_TIMEOUT_S": "1800"}
        if args.temperature is not None:
            environ["BOTLOOM_TEMPERATURE"] = args.temperature
        environ |= dict(setting.split("=", 1) for setting in args.setting)
        settings = Settings.from_env(environ, env_file=None)
        connector = FakeConnector()
        await connector.start()
        client = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
        await client.start_server()
        try:
            await client.app[RUNTIME].model.wait_ready()
            h = Harness(client, connector, args.set / "docs")
            began = time.perf_counter()
            firsts = [q for q in questions if not q.get("follows")]
            rows = list(await asyncio.gather(*(ask(h, q, None) for q in firsts)))
            follow_ups = [q for q in questions if q.get("follows")]
            rows += await asyncio.gather(*(ask(h, q, by_id[q["follows"]]) for q in follow_ups))
            all_docs = [h.attachment(d.name) for d in sorted(h.docs.iterdir())]
            unc = []
            for item in uncovered:
                _, reply = await h.send(f"u-{item['id']}", item["question"], 2, all_docs)
                unc.append({"id": item["id"], "cited": "Sources:" in reply, "reply": reply})
            seconds = time.perf_counter() - began
            refused = {} if args.questions_only else await refusals(h)
            timing = {} if args.questions_only else await ready_time(h)
        finally:
            await client.close()
            await connector.close()
    for row in rows:
        row["other_answered"] = row["other_fact"] or row["other_cited"]
        text = split(row["reply"])[0][:70]
        print(f"  {row['id']} {row['kind']:<10} fact={row['fact']!s:5} cited={row['cited']!s:5} "
              f"other={row['other_answered']!s:5} {text!r}")  # fmt: skip
    for row in unc:
        print(f"  {row['id']} uncovered cited={row['cited']!s:5} {row['reply'][:90]!r}")
    for name, value in refused.items():
        print(f"  refusal {name}: {value}")
    n = len(rows)
    summary = {
        "fact_in_reply": f"{sum(r['fact'] for r in rows)}/{n}",
        "file_cited": f"{sum(r['cited'] for r in rows)}/{n}",
        "other_conversation_answered_from_it": f"{sum(r['other_answered'] for r in rows)}/{n}",
        "without_file_fact_in_reply": f"{sum(r['other_fact'] for r in rows)}/{n}",
        "uncovered_citing_a_file": f"{sum(r['cited'] for r in unc)}/{len(unc)}",
        "twenty_page_pdf_ready_s": timing.get("seconds"),
        "forty_mb_bytes_sent_by_server": refused.get("40 MB", {}).get("bytes_sent_by_server"),
        "foreign_origin_requests": refused.get("foreign", {}).get("requests"),
        "blind_seconds": round(seconds, 1),
    }  # fmt: skip
    print(json.dumps(summary, indent=2))
    args.json.write_text(
        json.dumps({"summary": summary, "questions": rows, "uncovered": unc, "refusals": refused,
                    "ready": timing}, indent=1) + "\n",
        encoding="utf-8",
    )  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
