"""An access review's two managers and the items its campaign froze."""

from __future__ import annotations

from sqlalchemy import select

from storage.models import (
    ReviewItem,
)

MANAGER, OTHER = "UMANAGER", "UMANAGER2"


def items(core, campaign_id):
    with core.sessions() as session:
        rows = session.scalars(
            select(ReviewItem)
            .where(ReviewItem.campaign_id == campaign_id)
            .order_by(ReviewItem.user_name)
        ).all()
        return {row.user_name: row for row in rows}


def item_id(core, campaign_id, name):
    return items(core, campaign_id)[name].id
