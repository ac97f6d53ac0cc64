"""Reading Teams' feedback invoke (bad input is ignored, never an error)."""

from __future__ import annotations

from botbuilder.schema import Activity

from bot.turns.teams_rules import FeedbackClick, feedback_click


def test_feedback_clicks_are_read_and_malformed_ones_ignored() -> None:
    def invoke(value: object, name: str = "message/submitAction") -> Activity:
        return Activity(type="invoke", name=name, value=value)

    good = {
        "actionName": "feedback",
        "actionValue": {"reaction": "like", "feedback": '{"feedbackText": "nice"}'},
    }
    assert feedback_click(invoke(good)) == FeedbackClick("like", "nice")
    plain = {
        "actionName": "feedback",
        "actionValue": {"reaction": "dislike", "feedback": "not json"},
    }
    assert feedback_click(invoke(plain)) == FeedbackClick("dislike", "not json")
    for bad in (
        None,
        "x",
        {"actionName": "other"},
        {"actionName": "feedback", "actionValue": 3},
        {"actionName": "feedback", "actionValue": {"reaction": "love"}},
    ):
        assert feedback_click(invoke(bad)) is None, bad
    assert feedback_click(invoke(good, name="composeExtension/query")) is None
