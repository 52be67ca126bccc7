"""The Events API payload of a user opening a tab of the App Home."""

from __future__ import annotations

import json


def home_opened(user: str, tab: str) -> str:
    return json.dumps(
        {
            "token": "legacy-unused",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "type": "event_callback",
            "event_id": f"Ev{user}{tab}",
            "event_time": 1700000000,
            "event": {
                "type": "app_home_opened",
                "user": user,
                "channel": f"D{user}",
                "tab": tab,
                "event_ts": "1700000000.000100",
            },
        }
    )
