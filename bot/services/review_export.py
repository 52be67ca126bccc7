"""Access reviews as evidence for auditors: one campaign a line (`roleup review list`) and a
campaign's items as CSV or JSON lines (`roleup review export`), one row per account with its
frozen access, flags, decision, who decided and when, and the request it raised with its
outcome. The audit log's `review.decided` events carry the same item detail.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import func, select

from bot.services.container import Core
from bot.services.errors import InvalidInput, NotFound
from bot.services.reviews import FLAG_WORDS, item_detail
from storage.models import Request, ReviewCampaign, ReviewItem

FORMATS = ("csv", "jsonl")
COLUMNS = (
    "campaign",
    "integration",
    "account",
    "user_id",
    "linked_person",
    "groups",
    "policies",
    "inline_policies",
    "console_password",
    "password_last_used",
    "mfa",
    "access_keys",
    "last_used",
    "flags",
    "drift",
    "decision",
    "note",
    "removed_groups",
    "decided_by",
    "decided_at",
    "request_id",
    "request_state",
    "request_outcome",
)
# A spreadsheet runs a cell starting with one of these as a formula; IAM names may start with
# "=", "+", "-" or "@", so such cells are written with a leading apostrophe (OWASP's advice).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class CampaignLine:
    id: int
    integration: str
    state: str
    started_at: datetime
    due_at: datetime
    decided: int
    total: int


def list_campaigns(core: Core) -> list[CampaignLine]:
    decided = (
        select(func.count(ReviewItem.id))
        .where(ReviewItem.campaign_id == ReviewCampaign.id, ReviewItem.decision.is_not(None))
        .scalar_subquery()
    )
    with core.sessions() as session:
        rows = session.execute(select(ReviewCampaign, decided).order_by(ReviewCampaign.id)).all()
        return [
            CampaignLine(
                c.id, c.integration, c.state, c.started_at, c.due_at, int(d), c.items_total
            )
            for c, d in rows
        ]


def rows(core: Core, campaign_id: int) -> Iterator[dict[str, Any]]:
    """Every item of the campaign, by account name, as one flat record."""
    with core.sessions() as session:
        campaign = session.get(ReviewCampaign, campaign_id)
        if campaign is None:
            raise NotFound(f"There is no access review #{campaign_id}.")
        found = session.execute(
            select(ReviewItem, Request.state, Request.outcome)
            .outerjoin(Request, Request.id == ReviewItem.request_id)
            .where(ReviewItem.campaign_id == campaign_id)
            .order_by(ReviewItem.user_name)
        ).all()
        for item, state, outcome in found:
            detail = item_detail(item, campaign)
            evidence = detail.pop("evidence")
            yield {
                "campaign": campaign.id,
                "integration": campaign.integration,
                **detail,
                "console_password": evidence.get("password_enabled"),
                "password_last_used": evidence.get("password_last_used"),
                "mfa": evidence.get("mfa_active"),
                "access_keys": evidence.get("keys", []),
                "last_used": evidence.get("last_used"),
                "in_credential_report": evidence.get("in_report", False),
                "request_state": state,
                "request_outcome": outcome,
            }


def export(core: Core, campaign_id: int, out: TextIO, fmt: str) -> int:
    """Write the campaign in `fmt` (csv or jsonl); returns the number of items written."""
    if fmt not in FORMATS:
        raise InvalidInput(f"The format is csv or jsonl, not {fmt[:20]!r}.")
    count = 0
    if fmt == "jsonl":
        for row in rows(core, campaign_id):
            out.write(json_line(row))
            count += 1
        return count
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows(core, campaign_id):
        writer.writerow([_cell(_csv_value(column, row)) for column in COLUMNS])
        count += 1
    return count


def json_line(row: dict[str, Any]) -> str:
    """One record, one line: JSON leaves U+2028 and U+2029 raw, and a reader splitting lines on
    them (Python's str.splitlines, many editors) would cut the record in two; escaped, they
    read back the same."""
    text = json.dumps(row, sort_keys=True, ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n"


def _csv_value(column: str, row: dict[str, Any]) -> Any:
    value = row.get(column)
    if column == "flags":
        return "; ".join(FLAG_WORDS.get(f, f) for f in value or [])
    if column == "access_keys":
        return "; ".join(
            f"{'active' if k.get('active') else 'inactive'} rotated {k.get('last_rotated') or '-'}"
            f" last used {k.get('last_used') or 'never'}"
            for k in value or []
        )
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text
