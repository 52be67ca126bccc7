"""IAM behaviour moto 5 lacks, answered as AWS answers, while the demo runs.

Offboarding lists service-specific credentials and credential checks ask the policy
simulator; moto raises NotImplementedError for both. In the demo account nobody has
service-specific credentials and RoleUp's own user may do everything, so these say exactly
that. moto also drops CreateLoginProfile's PasswordResetRequired, which onboarding always
sets. `fill_moto_gaps()` returns the function that puts moto back as it was.

With `evaluate_policies` the simulator evaluates the principal's own policies (inline and
attached, its groups' too) against the resource asked, with moto's policy matcher: enough to
tell a key limited to `user/staff/*` from one limited to something narrower.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any


def _nothing_denied() -> Collection[str]:
    return ()


def _never() -> bool:
    return False


def fill_moto_gaps(
    denied: Callable[[], Collection[str]] = _nothing_denied,
    *,
    keep_password_reset: bool = True,
    evaluate_policies: Callable[[], bool] = _never,
) -> Callable[[], None]:
    """Fill the gaps; `denied()` names the actions the simulator refuses (tests vary it), and
    while `evaluate_policies()` is true the rest are decided by the principal's policies."""
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
        resources = self._get_param("ResourceArns", []) or ["*"]
        documents = (
            _documents_of(self.backend, self._get_param("PolicySourceArn"))
            if evaluate_policies()
            else None
        )
        results = []
        for action in self._get_param("ActionNames", []):
            decisions = [
                "implicitDeny" if action in refused else _decide(documents, action, resource)
                for resource in resources
            ]
            worst = next((d for d in decisions if d != "allowed"), "allowed")
            results.append(
                {
                    "EvalActionName": action,
                    "EvalResourceName": resources[0],
                    "EvalDecision": worst,
                    "ResourceSpecificResults": [
                        {"EvalResourceName": r, "EvalResourceDecision": d}
                        for r, d in zip(resources, decisions, strict=True)
                    ],
                }
            )
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


def _documents_of(backend: Any, principal_arn: str) -> list[str]:
    """The policy documents of a user (with its groups') or a role, as moto holds them."""
    name = principal_arn.rsplit("/", 1)[-1]
    if ":role/" in principal_arn:
        entity = backend.get_role(name)
        holders = [entity]
    else:
        entity = backend.get_user(name)
        holders = [entity, *backend.get_groups_for_user(name)]
    documents: list[str] = []
    for holder in holders:
        documents += list(holder.policies.values())
        documents += [_default_document(p) for p in holder.managed_policies.values()]
    return documents


def _default_document(policy: Any) -> str:
    return str(next(v.document for v in policy.versions if v.is_default))


def _decide(documents: list[str] | None, action: str, resource: str) -> str:
    if documents is None:
        return "allowed"
    from moto.iam.access_control import IAMPolicy, PermissionResult

    results = {IAMPolicy(d).is_action_permitted(action, resource) for d in documents}
    if PermissionResult.DENIED in results:
        return "explicitDeny"
    return "allowed" if PermissionResult.PERMITTED in results else "implicitDeny"
