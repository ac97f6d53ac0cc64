"""Citations: markers that match the passages used, and each channel's way of showing them."""

from __future__ import annotations

from botbuilder.schema import Activity

from bot.channels.ai_content import mark_ai_reply
from bot.channels.citations import ABSTRACT_CHARS, citation_claims
from bot.channels.citations import cited_message as render
from dialogs.knowledge.citations import CitedReply, cite
from dialogs.knowledge.passages import Passage


def cited_message(channel: str, reply: CitedReply) -> tuple[str, object]:
    return render(channel, reply.text, reply.cited)


HOLIDAYS = Passage(
    "Every employee has 27 days of paid holiday a year. " + "More words here. " * 20,
    "Staff handbook",
    "/docs/handbook.md",
    "doc-h",
    heading="Holidays",
)
AURORA = Passage(
    "The Aurora-3 comes with a warranty of seven years.",
    "Product sheet",
    "/docs/products.html",
    "doc-p",
    url="https://example.test/products",
    page=2,
)


def test_a_reply_without_markers_cites_the_passage_it_repeats() -> None:
    reply = cite("Employees get 27 days of paid holiday.", [AURORA, HOLIDAYS])
    assert reply.text == "Employees get 27 days of paid holiday [1]."
    assert reply.cited == [HOLIDAYS]


def test_the_models_markers_are_renumbered_and_wrong_ones_dropped() -> None:
    reply = cite("A warranty of seven years [2] and 27 days of holiday [1][9].", [HOLIDAYS, AURORA])
    assert reply.text == "A warranty of seven years [1] and 27 days of holiday [2]."
    assert reply.cited == [AURORA, HOLIDAYS]


def test_a_marker_naming_a_passage_the_reply_does_not_use_is_replaced() -> None:
    reply = cite("Employees get 27 days of paid holiday [2].", [HOLIDAYS, AURORA])
    assert reply.cited == [HOLIDAYS]
    assert reply.text == "Employees get 27 days of paid holiday [1]."


def test_a_reply_that_echoes_no_passage_cites_the_one_it_was_given_first() -> None:
    reply = cite("Spiders have eight legs [2].", [HOLIDAYS, AURORA])
    assert reply.cited == [HOLIDAYS]
    assert reply.text == "Spiders have eight legs [1]."


def test_claims_have_positions_names_short_abstracts_and_urls() -> None:
    claims = citation_claims([HOLIDAYS, AURORA])
    assert [c["position"] for c in claims] == [1, 2]
    assert all(c["@type"] == "Claim" for c in claims)
    first, second = (c["appearance"] for c in claims)
    assert first["@type"] == "DigitalDocument" and first["name"] == "Staff handbook"
    assert len(first["abstract"]) <= ABSTRACT_CHARS and first["abstract"].endswith("…")
    assert "url" not in first and second["url"] == "https://example.test/products"
    assert second["keywords"] == ["page 2"]


def test_teams_gets_markers_and_one_message_entity_with_the_ai_label() -> None:
    text, claims = cited_message("msteams", cite("27 days of paid holiday.", [HOLIDAYS]))
    assert text == "27 days of paid holiday [1]."
    reply = mark_ai_reply(
        Activity(type="message", text=text), channel_id="msteams", citations=claims
    )
    [entity] = reply.entities
    wire = entity.serialize()
    assert wire["type"] == "https://schema.org/Message"
    assert (wire["@context"], wire["@type"], wire["@id"]) == ("https://schema.org", "Message", "")
    assert wire["additionalType"] == ["AIGeneratedContent"]
    assert wire["citation"][0]["appearance"]["name"] == "Staff handbook"


def test_web_chat_also_gets_markdown_reference_definitions() -> None:
    text, claims = cited_message(
        "webchat", cite("Seven years [1], and 27 days of holiday [2].", [AURORA, HOLIDAYS])
    )
    body, _, definitions = text.partition("\n\n")
    assert body == "Seven years [1], and 27 days of holiday [2]."
    assert definitions.splitlines() == [
        '[1]: https://example.test/products "Product sheet"',
        '[2]: cite:2 "Staff handbook"',
    ]
    assert [claim["position"] for claim in claims or []] == [1, 2]


def test_other_channels_get_a_sources_line() -> None:
    text, claims = cited_message("emulator", cite("27 days of paid holiday.", [HOLIDAYS]))
    assert text == "27 days of paid holiday [1].\n\nSources: [1] Staff handbook (Holidays)"
    assert claims is None


def test_no_citations_means_the_reply_unchanged() -> None:
    assert cited_message("msteams", cite("Hello!", [])) == ("Hello!", None)


def test_the_abstract_starts_at_the_sentence_the_reply_used() -> None:
    passage = Passage(
        "It is blue. It weighs 3 kg. Its warranty is seven years.", "Sheet", "/s", "s"
    )
    [claim] = citation_claims([passage], "The warranty is seven years [1].")
    assert claim["appearance"]["abstract"] == "Its warranty is seven years."
