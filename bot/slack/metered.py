"""The Slack client RoleUp builds: counts, by method, the calls Slack refused."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.metrics import Metrics


class MeteredWebClient(WebClient):
    """The Slack client that counts the calls Slack refused or that never reached it."""

    def __init__(self, *args: Any, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = metrics

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:
        try:
            return super().api_call(api_method, **kwargs)
        except SlackApiError as err:
            error = err.response.get("error") if err.response is not None else None
            self.metrics.slack_failed(api_method, str(error or err.response.status_code))
            raise
        except Exception as err:
            self.metrics.slack_failed(api_method, type(err).__name__)
            raise
