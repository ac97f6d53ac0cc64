"""Files attached in chat, through the whole bot: the Emulator's and Teams' attachment shapes,
answers cited by the file's name, the conversation's files kept private, in storage (a restart
keeps them) and removed by /forget files and /reset."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from models.embeddings import HashingEmbeddingModel
from models.fake import FakeChatModel
from tests.bot.files.conftest import fare_pdf, leave_docx, send
from tests.connector import FakeConnector

QUESTION = "What is the night fare of the ferry?"


def pdf_attachment(connector: FakeConnector, name: str = "fare-rules.pdf") -> dict:
    url = connector.serve_file(name, fare_pdf(), "application/pdf")
    return {"contentType": "application/pdf", "contentUrl": url, "name": name}


async def test_an_emulator_file_with_a_question_is_read_and_cited_by_its_name(
    client: TestClient, connector: FakeConnector, model: FakeChatModel
) -> None:
    ack, answer = await send(
        client, connector, QUESTION, replies=2, attachments=[pdf_attachment(connector)]
    )
    assert ack["text"] == "I've read fare-rules.pdf."
    assert answer["text"].startswith("The night fare is 42 crowns per crossing [1].")
    assert "Sources: [1] fare-rules.pdf (page 1)" in answer["text"]
    assert "42 crowns" in model.prompts[-1][-1].content
    assert connector.file_requests == ["fare-rules.pdf"]


async def test_a_file_alone_is_acknowledged_and_later_questions_use_it_in_that_conversation_only(
    client: TestClient, connector: FakeConnector, model: FakeChatModel
) -> None:
    [ack] = await send(client, connector, None, attachments=[pdf_attachment(connector)])
    assert ack["text"] == "I've read fare-rules.pdf. Ask me anything about it."
    [answer] = await send(client, connector, QUESTION)
    assert "Sources: [1] fare-rules.pdf" in answer["text"]
    [elsewhere] = await send(client, connector, QUESTION, conversation="conv-2")
    assert elsewhere["text"] == "I am not sure."
    assert "42 crowns" not in model.prompts[-1][-1].content, "another conversation's file"


async def test_a_browser_upload_without_a_content_type_is_read_by_its_extension(
    client: TestClient, connector: FakeConnector
) -> None:
    url = connector.serve_file("leave.docx", leave_docx())
    attachment = {"contentType": "", "contentUrl": url, "name": "leave.docx"}
    ack, answer = await send(
        client, connector, "How long is parental leave?", replies=2, attachments=[attachment]
    )
    assert ack["text"] == "I've read leave.docx."
    assert "nineteen weeks" in answer["text"] and "Sources: [1] leave.docx" in answer["text"]


async def test_a_teams_file_is_downloaded_from_its_download_url_with_progress(
    client: TestClient, connector: FakeConnector
) -> None:
    download = connector.serve_file("download-fare", fare_pdf(), "application/pdf")
    attachments = [
        {
            "contentType": "application/vnd.microsoft.teams.file.download.info",
            "contentUrl": f"{connector.url}/files/needs-a-token",
            "name": "fare-rules.pdf",
            "content": {"downloadUrl": download, "uniqueId": "x1", "fileType": "pdf"},
        },
        {"contentType": "text/html", "content": f"<p>{QUESTION}</p>"},
    ]
    ack, answer = await send(
        client,
        connector,
        QUESTION,
        replies=2,
        attachments=attachments,
        channel="msteams",
        conversation="a:1",
        conversation_type="personal",
    )
    assert connector.file_requests == ["download-fare"], "downloadUrl only; no HTML 'file'"
    informative = next(a for a in connector.activities if a["type"] == "typing" and a.get("text"))
    assert informative["text"] == "Reading fare-rules.pdf…"
    assert informative["channelData"]["streamType"] == "informative"
    assert ack["text"] == "I've read fare-rules.pdf."
    informative_id = f"reply-{connector.activities.index(informative) + 1}"  # the connector's id
    assert ack["channelData"] == {"streamType": "final", "streamId": informative_id}
    claim = next(e for e in answer["entities"] if e["type"] == "https://schema.org/Message")
    assert claim["citation"][0]["appearance"]["name"] == "fare-rules.pdf"


async def test_forget_files_and_reset_remove_them(
    client: TestClient, connector: FakeConnector, model: FakeChatModel
) -> None:
    await send(client, connector, None, attachments=[pdf_attachment(connector)])
    [forgot] = await send(client, connector, "/forget files")
    assert forgot["text"] == "Done: I've forgotten the files of this conversation."
    [answer] = await send(client, connector, QUESTION)
    assert answer["text"] == "I am not sure."
    await send(client, connector, None, attachments=[pdf_attachment(connector, "again.pdf")])
    await send(client, connector, "/reset")
    [answer] = await send(client, connector, QUESTION)
    assert answer["text"] == "I am not sure."
    [none] = await send(client, connector, "/forget files")
    assert none["text"] == "There are no files in this conversation."


async def test_the_files_survive_a_restart(
    files_settings: Settings, connector: FakeConnector, model: FakeChatModel
) -> None:
    for attempt in range(2):  # two processes' worth of app over the same SQLite state
        app = create_app(files_settings, model=model, embedding_model=HashingEmbeddingModel())
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        try:
            if attempt == 0:
                await send(client, connector, None, attachments=[pdf_attachment(connector)])
            else:
                [answer] = await send(client, connector, QUESTION)
                assert "Sources: [1] fare-rules.pdf" in answer["text"]
        finally:
            await client.close()
