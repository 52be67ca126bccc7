"""Domain errors: raised by services, turned into a short user message at the edge.

Every message is fit to show a Slack user as is: it names the thing and what to do, and never
carries a secret (no key, password or token is ever put into one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from bot.services.policy import Action, Decision, Roster

#: What a service lets through when the store cannot answer (a lost connection, a lock wait):
#: not a RoleUpError, since no user did anything wrong; the edge says "try again".
StoreError = SQLAlchemyError


class RoleUpError(Exception):
    """Base of every error a user may see."""

    #: For modal validation: the field (its label in the modal) the error belongs to, if any.
    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        if field is not None:
            self.field = field

    @property
    def user_message(self) -> str:
        return str(self)


class InvalidInput(RoleUpError):
    """Input that can never work as given (bad name, bad ARN, bad number...)."""


class InvalidUsername(InvalidInput):
    field = "username"


class PasswordPolicyViolation(InvalidInput):
    field = "password"


class UserExists(InvalidInput):
    field = "username"


class InvalidGroupName(InvalidInput):
    field = "groups"


class InvalidPolicyArn(InvalidInput):
    field = "policies"


class NotFound(RoleUpError):
    pass


class IntegrationNotFound(NotFound):
    pass


class UserNotFound(NotFound):
    pass


class OutsidePrefix(UserNotFound):
    """Deliberately indistinguishable from UserNotFound for the user: same kind of message."""


class GroupNotFound(NotFound):
    field = "groups"


class PolicyNotFound(NotFound):
    field = "policies"


class RequestNotFound(NotFound):
    pass


class ReadOnlyIntegration(RoleUpError):
    pass


class NotAllowed(RoleUpError):
    """RoleUp's own roles refuse this person this action."""


class Refused(NotAllowed):
    """The policy said no to this person: the decision says why and who can help; the Slack
    layer renders it with mentions (bot.slack.access)."""

    def __init__(
        self, message: str, *, decision: Decision, action: Action, integration: Roster | None
    ) -> None:
        super().__init__(message)
        self.decision = decision
        self.action = action
        self.integration = integration


class TargetIsRoleUp(NotAllowed):
    """The target is RoleUp's own principal: never offboarded or regrouped through RoleUp."""


class NothingToRotate(RoleUpError):
    """A key rotation asked of an integration that holds no key of RoleUp's own."""


class RequestConflict(RoleUpError):
    """The request was already decided, is running, or changed under us."""


class StoreRefused(RoleUpError):
    """The store would not take a write (a value it cannot hold, a constraint); said plainly,
    without the statement or its values."""


class AwsError(RoleUpError):
    pass


class InvalidCredentials(AwsError):
    pass


class AwsAccessDenied(AwsError):
    pass


class Throttled(AwsError):
    pass


class AwsUnavailable(AwsError):
    pass


class AwsConflict(AwsError):
    """AWS refused because of the entity's state (e.g. it still has something attached)."""


class StepFailed(AwsError):
    """A multi-step change (offboarding) stopped at `step`; running it again resumes there."""

    def __init__(self, message: str, *, step: str, cause: RoleUpError) -> None:
        super().__init__(message)
        self.step = step
        self.cause = cause


class AccessCutFailed(StepFailed):
    """Offboarding could not cut all of the user's access (deny-all, password, keys): nothing
    else was removed. `step` is the first cut that failed, `failed_steps` all of them."""

    def __init__(
        self, message: str, *, step: str, cause: RoleUpError, failed_steps: tuple[str, ...]
    ) -> None:
        super().__init__(message, step=step, cause=cause)
        self.failed_steps = failed_steps


class TargetReplaced(RoleUpError):
    """The IAM user named in a request was deleted and re-created since: it is another user."""
