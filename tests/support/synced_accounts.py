"""What the store holds of a synced integration: its accounts and their group memberships."""

from __future__ import annotations

from sqlalchemy import select

from storage.models import (
    Account,
    Group,
    Membership,
)


def stored(core, integration_id):
    with core.sessions() as session:
        accounts = {
            a.user_name: a
            for a in session.scalars(
                select(Account).where(Account.integration_id == integration_id)
            )
        }
        groups = {
            (user, group)
            for user, group in session.execute(
                select(Account.user_name, Group.name)
                .join(Membership, Membership.account_id == Account.id)
                .join(Group, Group.id == Membership.group_id)
                .where(Account.integration_id == integration_id)
            )
        }
        return accounts, groups
