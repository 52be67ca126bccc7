"""Break-glass with an injected clock: given at once to someone on the list (and only to them),
flagged in the audit, refused in one sentence otherwise, ended by itself, announced again after
4 hours once across processes until an approver acknowledges it, revoked by an approver."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.services import breakglass, expiry, policy
from bot.services.errors import InvalidInput, NotAllowed, RequestConflict, RoleUpError
from bot.services.grants import Term
from bot.services.policy import BREAKGLASS, Change, Privileges, Reason, Standing
from bot.services.requesting import BreakGlassAsk, request_breakglass, request_extend_grant
from bot.services.sync import sync_integration
from storage.models import Account, AuditEvent, Grant, Integration, Request, utcnow

ONCALL = "UONCALL01"


@pytest.fixture
def prod(core, make_integration, iam):
    integration = make_integration()
    with core.sessions.begin() as s:
        row = s.merge(integration)
        row.managers = ["UMANAGER"]
        row.approvers = ["UAPPROVER", ONCALL]  # the grantee may be an approver too
        row.approvals_channel = "CAPPROVALS"
        row.breakglass = [ONCALL]
    iam.create_user(UserName="alice")
    for group in ("admins", "ops"):
        iam.create_group(GroupName=group)
    sync_integration(core, integration.id, actor="test")
    with core.sessions.begin() as s:
        s.execute(update(Account).where(Account.user_name == "alice").values(slack_user_id=ONCALL))
    return integration


def ask(group="admins", seconds=3600, reason="prod is down", integration=None):
    return BreakGlassAsk(group, seconds, reason, integration)


def use(core, actor=ONCALL, **kwargs):
    return request_breakglass(core, actor=actor, ask=ask(**kwargs))


def groups_in_iam(iam, user="alice") -> list[str]:
    return sorted(g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"])


def events(core, action: str) -> list[AuditEvent]:
    with core.sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def the_grant(core) -> Grant:
    with core.sessions() as s:
        return s.scalars(select(Grant)).one()


# --- granted at once ----------------------------------------------------------------------------
def test_someone_on_the_list_gets_the_group_at_once_flagged_as_break_glass(core, prod, iam):
    before = utcnow()
    given = use(core)
    assert (given.request.kind, given.request.state) == ("breakglass", "done")
    assert given.request.decided_by == "policy"
    assert groups_in_iam(iam) == ["admins"]
    grant = the_grant(core)
    assert grant.breakglass and grant.reason == "prod is down"
    assert (grant.user_name, grant.group_name, grant.slack_user_id) == ("alice", "admins", ONCALL)
    assert before + timedelta(hours=1) <= grant.ends_at <= utcnow() + timedelta(hours=1)
    assert grant.announced_at is not None and grant.acknowledged_at is None
    assert given.grant is not None and given.grant.id == grant.id

    (granted,) = events(core, "breakglass.granted")
    assert granted.actor == ONCALL and granted.request_id == given.request.id
    assert granted.detail["breakglass"] is True and granted.detail["reason"] == "prod is down"
    with core.sessions() as s:
        trail = list(s.scalars(select(AuditEvent).where(AuditEvent.request_id == given.request.id)))
    assert {e.detail.get("kind") for e in trail if e.action.startswith("request.")} == {
        "breakglass"
    }


def test_the_policy_needs_no_approver_only_for_someone_on_the_list():
    @dataclass
    class Listed:
        name: str = "prod"
        breakglass: tuple[str, ...] = (ONCALL, "SONCALL")

    def member_of(user: str, group: str) -> bool:
        return (user, group) == ("UINGROUP", "SONCALL")

    need = policy.needs_approval(Change(BREAKGLASS, groups_added=("admins",)), [], Privileges())
    assert not need.required and "break-glass" in need.why
    cases = {
        (ONCALL, Standing.MEMBER): Reason.BREAKGLASS_LISTED,
        ("UINGROUP", Standing.MEMBER): Reason.BREAKGLASS_LISTED,
        ("SONCALL", Standing.MEMBER): Reason.NOT_BREAKGLASS_LISTED,  # a group id is no person
        ("USTRANGER", Standing.MEMBER): Reason.NOT_BREAKGLASS_LISTED,
        (ONCALL, Standing.GUEST): Reason.GUEST,
        (ONCALL, Standing.DEACTIVATED): Reason.DEACTIVATED,
    }
    for (who, standing), reason in cases.items():
        decision = policy.may_break_glass(who, Listed(), member_of, standing)  # type: ignore[arg-type]
        assert decision.reason == reason, who
        assert decision.allowed == (reason == Reason.BREAKGLASS_LISTED)


# --- refused ------------------------------------------------------------------------------------
def _not_listed(core, prod):
    return {"actor": "USTRANGER"}


def _no_account(core, prod):
    with core.sessions.begin() as s:
        s.execute(update(Integration).values(breakglass=[ONCALL, "UNOACCOUNT"]))
    return {"actor": "UNOACCOUNT"}


def _two_accounts(core, prod):
    with core.sessions.begin() as s:
        s.add(Account(integration_id=prod.id, user_name="alice2", slack_user_id=ONCALL))
    return {}


def _read_only(core, prod):
    with core.sessions.begin() as s:
        s.execute(update(Integration).values(read_only=True))
    return {}


def _own_principal(core, prod):
    with core.sessions.begin() as s:
        arn = "arn:aws:iam::123456789012:user/alice"
        s.execute(update(Integration).values(principal_arn=arn))
    return {}


REFUSED = {
    "not on the list": (_not_listed, {}, "not on the break-glass list of any integration"),
    "no linked account": (_no_account, {}, "no IAM account linked in prod"),
    "two linked accounts": (_two_accounts, {}, "needs exactly one"),
    "no reason": (None, {"reason": "   "}, "needs a reason"),
    "reason too long": (None, {"reason": "x" * 501}, "at most 500 characters"),
    "over four hours": (None, {"seconds": 4 * 3600 + 60}, "at most 4 hours"),
    "under five minutes": (None, {"seconds": 60}, "at least 5 minutes"),
    "unknown group": (None, {"group": "nosuch"}, "no group nosuch in integration prod"),
    "invalid group": (None, {"group": "<!channel>"}, "not a valid IAM group name"),
    "read-only": (_read_only, {}, "prod is read-only"),
    "own principal": (_own_principal, {}, "RoleUp itself signs in as"),
    "other integration": (None, {"integration": "nosuch"}, "no integration named nosuch"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_refusal_says_why_in_one_sentence_and_changes_nothing(core, prod, iam, case):
    arrange, asked, words = REFUSED[case]
    actor = (arrange(core, prod) if arrange else {}).get("actor", ONCALL)
    with pytest.raises(RoleUpError, match=words) as refused:
        use(core, actor=actor, **asked)
    assert not re.search(r"[.!?] [A-Z]", refused.value.user_message)  # one sentence
    assert groups_in_iam(iam) == []
    with core.sessions() as s:
        assert s.scalars(select(Grant)).all() == []
        assert s.scalars(select(Request)).all() == []
    (refusal,) = events(core, "breakglass.refused")
    assert refusal.actor == actor and refusal.outcome == "refused"
    assert refusal.detail["breakglass"] is True


def test_on_several_lists_it_asks_which_and_integration_name_picks_one(
    core, prod, make_integration, iam
):
    staging = make_integration("staging")
    with core.sessions.begin() as s:
        s.execute(update(Integration).values(breakglass=[ONCALL], approvers=["UAPPROVER"]))
        s.add(Account(integration_id=staging.id, user_name="alice", slack_user_id=ONCALL))
    with pytest.raises(RoleUpError, match="prod, staging: start with integration:NAME"):
        use(core)
    given = use(core, integration="prod")
    assert given.grant is not None and given.grant.integration == "prod"


# --- ending, announcing, reviewing --------------------------------------------------------------
def test_it_ends_by_itself_and_the_end_is_flagged(core, prod, iam):
    use(core)
    grant = the_grant(core)
    (ended,) = expiry.expire_due(core, now=grant.ends_at + timedelta(seconds=1))
    assert ended.ended and groups_in_iam(iam) == []
    (flagged,) = events(core, "breakglass.ended")
    assert flagged.detail["breakglass"] is True and flagged.detail["end_reason"] == "expired"


def _still_active_at(core, moment) -> None:
    """As if AWS had kept RoleUp from ending it: it is still active at `moment`."""
    with core.sessions.begin() as s:
        s.execute(update(Grant).values(ends_at=moment + timedelta(hours=1)))


def test_it_is_announced_again_after_four_hours_once_across_two_calls(core, prod, iam):
    use(core)
    first = the_grant(core).announced_at
    _still_active_at(core, first + timedelta(hours=8))
    assert breakglass.announce_due(core, now=first + timedelta(hours=3, minutes=59)) == []
    due = first + breakglass.ANNOUNCE_EVERY
    one = breakglass.announce_due(core, now=due)
    other = breakglass.announce_due(core, now=due + timedelta(seconds=20))
    assert [a.again for a in one] == [True] and other == []
    assert one[0].to.channels == ["CAPPROVALS"]
    assert len(breakglass.announce_due(core, now=due + timedelta(hours=4))) == 1
    assert [e.detail["breakglass"] for e in events(core, "breakglass.announced")] == [True] * 2


def test_an_announcement_nobody_could_see_is_tried_again_at_the_next_tick(core, prod, iam):
    given = use(core)
    assert given.grant is not None
    breakglass.release(core, breakglass.first_announcement(core, given.grant))
    (retried,) = breakglass.announce_due(core, now=utcnow())
    assert retried.again is False


def test_an_approvers_acknowledgement_stops_the_announcements(core, prod, iam):
    use(core)
    grant = the_grant(core)
    _still_active_at(core, grant.announced_at + timedelta(hours=8))
    row = breakglass.acknowledge(core, grant.id, actor="UAPPROVER")
    assert row.acknowledged_by == "UAPPROVER"
    assert breakglass.announce_due(core, now=grant.announced_at + timedelta(hours=4)) == []
    with pytest.raises(RequestConflict, match="already acknowledged"):
        breakglass.acknowledge(core, grant.id, actor="UAPPROVER")
    (acknowledged,) = events(core, "breakglass.acknowledged")
    assert acknowledged.detail["breakglass"] is True


@pytest.mark.parametrize("who", [ONCALL, "UMANAGER", "USTRANGER"])
def test_only_another_approver_reviews_it(core, prod, iam, who):
    use(core)
    grant = the_grant(core)
    with pytest.raises(NotAllowed):
        breakglass.acknowledge(core, grant.id, actor=who)
    with pytest.raises(NotAllowed):
        expiry.revoke(core, grant.id, actor=who)
    assert groups_in_iam(iam) == ["admins"]
    assert the_grant(core).acknowledged_at is None
    assert len(events(core, "breakglass.review_refused")) == 2


def test_revoke_by_an_approver_ends_it_now(core, prod, iam):
    use(core)
    grant = the_grant(core)
    result = expiry.revoke(core, grant.id, actor="UAPPROVER")
    assert result.ended and groups_in_iam(iam) == []
    assert the_grant(core).end_reason == "revoked by <@UAPPROVER>"
    (revoked,) = events(core, "breakglass.revoked")
    assert revoked.actor == "UAPPROVER" and revoked.detail["breakglass"] is True
    with pytest.raises(RequestConflict):
        expiry.revoke(core, grant.id, actor="UAPPROVER")


def test_someone_taken_off_the_list_meanwhile_gets_nothing_when_it_runs(core, prod, iam):
    target = breakglass.choose_target(core, ONCALL, None)
    with core.sessions.begin() as s:
        s.execute(update(Integration).values(breakglass=[]))
    with pytest.raises(NotAllowed, match="not on the break-glass list of integration prod"):
        breakglass.require_listed(core, ONCALL, target.integration_id)


def test_break_glass_access_is_not_extended_past_its_box(core, prod, iam):
    use(core)
    grant = the_grant(core)
    for who in (ONCALL, "UMANAGER"):
        with pytest.raises(InvalidInput, match="not extended"):
            request_extend_grant(core, actor=who, grant_id=grant.id, term=Term(seconds=86400))
    assert the_grant(core).ends_at == grant.ends_at


def test_it_is_refused_when_only_the_grantee_could_review_it(core, prod, iam):
    # Attack: an approvals channel is set, so "somebody would be told", but the only listed
    # approver is the grantee, who may never review it: a privileged group with no reviewer.
    with core.sessions.begin() as s:
        s.get(Integration, prod.id).approvers = [ONCALL]
    with pytest.raises(NotAllowed, match="Nobody would review"):
        use(core)
    assert groups_in_iam(iam) == []
    assert events(core, "breakglass.refused")
