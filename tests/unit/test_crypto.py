"""Secrets at rest: MultiFernet, rotation, and clear errors for a wrong key."""

from __future__ import annotations

import pytest

from storage.crypto import SecretBox, SecretUnreadable, generate_key


def test_round_trip_never_stores_plaintext():
    box = SecretBox([generate_key()])
    token = box.encrypt("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert "wJalrXUtnFEMI" not in token
    assert box.decrypt(token, what="x") == "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_old_keys_decrypt_and_rotation_moves_to_the_first_key():
    old, new = generate_key(), generate_key()
    token = SecretBox([old]).encrypt("s3cret")
    both = SecretBox([new, old])
    assert both.decrypt(token, what="x") == "s3cret"
    rotated = both.rotate(token, what="x")
    assert SecretBox([new]).decrypt(rotated, what="x") == "s3cret"


def test_a_wrong_key_names_what_could_not_be_read():
    token = SecretBox([generate_key()]).encrypt("s3cret")
    with pytest.raises(SecretUnreadable, match="the key of integration prod") as info:
        SecretBox([generate_key()]).decrypt(token, what="the key of integration prod")
    assert "s3cret" not in str(info.value)
    assert info.value.__cause__ is None
