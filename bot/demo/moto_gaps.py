"""IAM behaviour moto 5 lacks, answered as AWS answers, while the demo runs.

Offboarding lists service-specific credentials and credential checks ask the policy
simulator; moto raises NotImplementedError for both. In the demo account nobody has
service-specific credentials and RoleUp's own user may do everything, so these say exactly
that. moto also drops CreateLoginProfile's PasswordResetRequired, which onboarding always
sets. `fill_moto_gaps()` returns the function that puts moto back as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any


def _nothing_denied() -> Collection[str]:
    return ()


def fill_moto_gaps(
    denied: Callable[[], Collection[str]] = _nothing_denied, *, keep_password_reset: bool = True
) -> Callable[[], None]:
    """Fill the gaps; `denied()` names the actions the simulator refuses (tests vary it)."""
    from moto.core.responses import ActionResult
    from moto.iam.exceptions import NoSuchEntity
    from moto.iam.responses import IamResponse

    def list_service_specific_credentials(self: Any) -> ActionResult:
        self.backend.get_user(self._get_param("UserName"))  # NoSuchEntity for a missing user
        return ActionResult({"ServiceSpecificCredentials": []})

    def delete_service_specific_credential(self: Any) -> ActionResult:
        credential = self._get_param("ServiceSpecificCredentialId")
        raise NoSuchEntity(f"No such credential {credential}")

    def simulate_principal_policy(self: Any) -> ActionResult:
        refused = denied()
        results = [
            {
                "EvalActionName": action,
                "EvalResourceName": "*",
                "EvalDecision": "implicitDeny" if action in refused else "allowed",
            }
            for action in self._get_param("ActionNames", [])
        ]
        return ActionResult({"EvaluationResults": results, "IsTruncated": False})

    original_create_login_profile = IamResponse.create_login_profile

    def create_login_profile(self: Any) -> ActionResult:
        answer = original_create_login_profile(self)
        if str(self._get_param("PasswordResetRequired")).lower() == "true":
            self.backend.get_user(self._get_param("UserName")).password_reset_required = True
            profile = answer.result["LoginProfile"]  # type: ignore[index]
            profile["PasswordResetRequired"] = True
        return answer

    fillers: tuple[Callable[[Any], ActionResult], ...] = (
        list_service_specific_credentials,
        delete_service_specific_credential,
        simulate_principal_policy,
    )
    if keep_password_reset:
        fillers += (create_login_profile,)
    missing = object()
    saved = {f.__name__: IamResponse.__dict__.get(f.__name__, missing) for f in fillers}
    for filler in fillers:
        setattr(IamResponse, filler.__name__, filler)

    def restore() -> None:
        for name, original in saved.items():
            if original is missing:
                delattr(IamResponse, name)
            else:
                setattr(IamResponse, name, original)

    return restore
