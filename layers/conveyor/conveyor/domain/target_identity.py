"""Which Lambda function a target names: one canonical identity for every way of writing it.

Lambda accepts a function as a name (``hello``), a partial ARN (``123456789012:function:hello``) or
a full ARN (``arn:aws:lambda:us-east-1:123456789012:function:hello``). Written differently, they are
the same function, so everything that must be one per function (the lock, the owning pipeline) is
keyed by the canonical identity (partition, account, region, name), never by the text in a spec.

Two rules keep that identity honest:

- A qualifier (``hello:live``, ``...:function:hello:3``) in ``function_name`` is refused: the alias
  is the target's own field, and a version-qualified target would make the alias meaningless.
- A target resolves against the account and region Conveyor runs in (its ``Home``): an ARN in
  another account or region is refused, never quietly read as "our function of the same name"
  (Lambda's API would ignore neither, but a name-only lookup would).

No I/O here: the caller learns its ``Home`` (a Lambda context's ``invoked_function_arn``, STS for
the CLI) and passes it in.
"""

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from conveyor.domain.errors import ForeignTargetError, TargetIdentityError

Account = Annotated[str, StringConstraints(pattern=r"^\d{12}$")]
Region = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")]
Partition = Annotated[str, StringConstraints(pattern=r"^aws(-[a-z]+)*$")]

_NAME = r"(?P<name>[A-Za-z0-9_-]{1,64})"
_QUALIFIER = r"(?::(?P<qualifier>[^:]*))?"
_ACCOUNT = r"(?P<account>\d{12})"
_FULL = re.compile(
    rf"^arn:(?P<partition>aws(?:-[a-z]+)*):lambda:(?P<region>[a-z]{{2}}(?:-[a-z]+)+-\d{{1,2}}):{_ACCOUNT}:function:"
    rf"{_NAME}{_QUALIFIER}$"
)
_RESOURCE = re.compile(
    r"^arn:(?P<partition>aws(?:-[a-z]+)*):[a-z0-9-]+:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d{1,2}):(?P<account>\d{12}):.+$"
)
_PARTIAL = re.compile(rf"^{_ACCOUNT}:function:{_NAME}{_QUALIFIER}$")
_BARE = re.compile(rf"^{_NAME}{_QUALIFIER}$")

FORMS = "a function name, a partial ARN (123456789012:function:NAME) or a full ARN"


class Home(BaseModel):
    """The account, region and partition Conveyor runs in: the only place its targets may be."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    partition: Partition = "aws"
    account: Account
    region: Region

    @classmethod
    def from_arn(cls, arn: str) -> "Home":
        """The home of a resource of Conveyor's own: a stage's ``context.invoked_function_arn``, the
        state machine's ARN (the CLI). No STS call: the ARN already says where it is."""
        match = _RESOURCE.match(arn)
        if match is None:
            raise ValueError(f"not a regional resource ARN: {arn!r}")
        return cls(partition=match["partition"], account=match["account"], region=match["region"])


class FunctionRef(BaseModel):
    """A target function as written: its name, and the account/region/partition if an ARN gave them."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    name: str
    account: str | None = None
    region: str | None = None
    partition: str | None = None

    @classmethod
    def parse(cls, text: str) -> "FunctionRef":
        """Parse ``text`` (any of ``FORMS``, unqualified); a ``ValueError`` that says what is wrong otherwise."""
        for pattern in (_FULL, _PARTIAL, _BARE):
            match = pattern.match(text)
            if match is None:
                continue
            if match["qualifier"] is not None:
                raise ValueError(
                    f"{text!r} carries a qualifier ({match['qualifier']!r}); name the function without a version "
                    "or alias and put the alias in target.alias"
                )
            groups = match.groupdict()
            return cls(
                name=groups["name"],
                account=groups.get("account"),
                region=groups.get("region"),
                partition=groups.get("partition"),
            )
        raise ValueError(f"{text!r} is not {FORMS} (a name is 1-64 letters, digits, '-' or '_')")

    def resolve(self, home: Home, *, field: str) -> "FunctionId":
        """The canonical identity in ``home``; ``ForeignTargetError`` naming ``field`` if it is elsewhere."""
        for part, written, ours in (
            ("account", self.account, home.account),
            ("region", self.region, home.region),
            ("partition", self.partition, home.partition),
        ):
            if written is not None and written != ours:
                raise ForeignTargetError(
                    f"{field}: function {self.name!r} is in {part} {written}, but Conveyor runs in {part} {ours}; "
                    "a target must be a function of Conveyor's own account and region"
                )
        return FunctionId(partition=home.partition, account=home.account, region=home.region, name=self.name)


class FunctionId(BaseModel):
    """The canonical identity of one Lambda function: what locks and ownership are keyed by."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    partition: str
    account: str
    region: str
    name: str

    @property
    def arn(self) -> str:
        """The unqualified function ARN: one string per function, whatever form the spec used."""
        return f"arn:{self.partition}:lambda:{self.region}:{self.account}:function:{self.name}"

    def __str__(self) -> str:
        return self.arn


class BeanstalkEnvironmentId(BaseModel):
    """The canonical identity of one Elastic Beanstalk environment (its ARN): what its lock and owner are keyed by."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    partition: str
    account: str
    region: str
    application: str
    name: str

    @property
    def arn(self) -> str:
        return (
            f"arn:{self.partition}:elasticbeanstalk:{self.region}:{self.account}:environment/"
            f"{self.application}/{self.name}"
        )

    def __str__(self) -> str:
        return self.arn


def beanstalk_environment(application: str, name: str, home: Home) -> BeanstalkEnvironmentId:
    return BeanstalkEnvironmentId(
        partition=home.partition, account=home.account, region=home.region, application=application, name=name
    )


def resolve_function(text: str, home: Home, *, field: str) -> FunctionId:
    """``text`` (a spec's ``function_name``) as a canonical identity in ``home``.

    Raises ``TargetIdentityError`` naming ``field`` when ``text`` is malformed or qualified, and its
    subclass ``ForeignTargetError`` when it is in another account, region or partition.
    """
    try:
        ref = FunctionRef.parse(text)
    except ValueError as exc:
        raise TargetIdentityError(f"{field}: {exc}") from exc
    return ref.resolve(home, field=field)


__all__ = ["FORMS", "FunctionId", "FunctionRef", "Home", "resolve_function"]
