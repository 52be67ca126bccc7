"""Property tests of the validators and parsers that stand between users and AWS.

For any input: a parser either returns or raises its domain error (never anything else), what
it accepts is what AWS accepts, and a refusal message is short and never repeats a password.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.services.errors import InvalidInput, PasswordPolicyViolation
from bot.services.iam import (
    PasswordRules,
    validate_group_name,
    validate_policy_arn,
    validate_slack_user,
    validate_username,
)
from bot.slack.retry_guard import MAX_KEY, delivery_key, retry_number
from handlers.invite.blocks import _meta_id

IAM_USERNAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
rules = st.builds(
    PasswordRules,
    minimum_length=st.integers(min_value=6, max_value=40),
    require_symbols=st.booleans(),
    require_numbers=st.booleans(),
    require_uppercase=st.booleans(),
    require_lowercase=st.booleans(),
    minimum_kinds=st.integers(min_value=0, max_value=4),
)


@given(st.text(max_size=200))
def test_a_username_is_accepted_exactly_when_iam_would_accept_it(name):
    try:
        validate_username(name)
    except InvalidInput as exc:
        assert not IAM_USERNAME.fullmatch(name)
        assert len(str(exc)) < 200
        assert not any(not ch.isprintable() for ch in str(exc))
    else:
        assert IAM_USERNAME.fullmatch(name)


@given(st.text(max_size=300))
def test_group_policy_and_slack_validators_only_raise_invalid_input(value):
    for validate in (validate_group_name, validate_policy_arn, validate_slack_user):
        try:
            validate(value)
        except InvalidInput as exc:
            assert len(str(exc)) < 400


@given(rules, st.text(max_size=200))
def test_password_rules_never_echo_the_password_and_agree_with_check(policy, password):
    problems = policy.problems(password)
    try:
        policy.check(password)
    except PasswordPolicyViolation as exc:
        assert problems
        if len(password) >= 4:
            assert password not in str(exc)
    else:
        assert problems == []


@settings(max_examples=50)
@given(rules)
def test_generated_passwords_always_pass_their_own_rules(policy):
    assert policy.problems(policy.generate()) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)


@given(
    st.dictionaries(
        st.sampled_from(["type", "event_id", "trigger_id", "actions", "x"]), json_values
    )
)
def test_delivery_keys_fit_their_column_for_any_body(body):
    key = delivery_key(body)
    assert key is None or (0 < len(key) <= MAX_KEY)


@given(st.dictionaries(st.just("x-slack-retry-num"), st.lists(st.text(max_size=30), max_size=2)))
def test_retry_number_is_never_negative_and_never_raises(headers):
    assert retry_number(headers) >= 0


@given(json_values)
def test_private_metadata_ids_are_small_whole_numbers(value):
    found = _meta_id({"invite_id": value}, "invite_id")
    assert isinstance(found, int) and 0 <= found < 10**18
