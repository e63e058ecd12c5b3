"""Stack settings: parse the project's config into one validated object before anything is declared.

Pure Python (no Pulumi engine): the program, the offline plan and the tests all use it. Every bad
value is reported in one message that names the key, the value given and what is allowed, so a
person can fix all of them at once; nothing is registered until every setting is valid.

Values arrive as the Pulumi CLI hands them to a program: strings, with lists and maps serialized as
JSON. Native Python values (int, bool, list, dict) are accepted too, for tests and tools.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.azure import (
    CONTAINER_TYPES,
    COOLDOWN_MAX_SECONDS,
    COOLDOWN_MIN_SECONDS,
    FORBIDDEN_TAG_KEY_CHARACTERS,
    GUID_PATTERN,
    LOCATION_PATTERN,
    LOCK_LEVELS,
    MAX_SESSIONS_LIMIT,
    MAX_TAG_KEY_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    MAX_TAGS,
    MIN_SESSIONS,
    NETWORK_STATUSES,
    POOL_NAME_MAX_LENGTH,
    POOL_NAME_PATTERN,
    PRINCIPAL_TYPES,
    RESOURCE_GROUP_NAME_MAX_LENGTH,
    RESOURCE_GROUP_NAME_PATTERN,
)

# The config namespace of every setting: the project's name in Pulumi.yaml.
CONFIG_NAMESPACE = "dynamic-sessions"

# Tags the program sets on every resource; a stack may not set them itself.
MANAGED_BY_TAG = "managed-by"
PROJECT_TAG = "pulumi-project"
STACK_TAG = "pulumi-stack"
RESERVED_TAGS = (MANAGED_BY_TAG, PROJECT_TAG, STACK_TAG)
MAX_USER_TAGS = MAX_TAGS - len(RESERVED_TAGS)

# The `lock` value that means "no management lock".
NO_LOCK = "none"
LOCK_CHOICES: tuple[str, ...] = (NO_LOCK, *LOCK_LEVELS)

# The stand-in value of a deferred setting (see parse_settings).
DEFERRED = "<known later>"

# Keep echoed values short: a message must stay readable when someone pastes a large blob.
_MAX_SHOWN_VALUE_CHARS = 80
_POOL_NAME_HASH_CHARS = 6
# Longer than any allowed integer setting (at most 4 digits) with room for leading zeros.
_MAX_INTEGER_DIGITS = 18


class SettingsError(ValueError):
    """One or more settings are invalid; the message lists each one, ready to show a person.

    Each problem is a sentence that starts with the setting's name (`maxSessions = 0: expected ...`). A stack
    names them by their config key (`dynamic-sessions:maxSessions`) and the stack file; the component
    (`component=` its resource name) by its input names, for whichever program gave them.
    """

    def __init__(self, problems: Sequence[str], stack: str | None = None, *, component: str | None = None) -> None:
        self.bare_problems = list(problems)
        self.stack = stack
        self.component = component
        prefix = "" if component is not None else f"{CONFIG_NAMESPACE}:"
        self.problems = [f"{prefix}{problem}" for problem in self.bare_problems]
        if component is not None:
            lines = [f"Invalid inputs of CodeInterpreterPool '{component}':"]
            footer = "Fix these in the arguments the program gives the component (docs/component.md)."
        else:
            where = f" of stack '{stack}' (Pulumi.{stack}.yaml)" if stack else ""
            lines = [f"Invalid configuration{where}:"]
            footer = "Fix these with `pulumi config set <key> <value>` or by editing the stack file."
        lines += [f"  - {problem}" for problem in self.problems]
        lines.append(footer)
        super().__init__("\n".join(lines))

    def for_stack(self, stack: str) -> SettingsError:
        """The same problems, named as a stack's config keys."""
        return SettingsError(self.bare_problems, stack)

    def property_errors(self) -> list[tuple[str, str]]:
        """Each problem as (input path, the sentence): what Pulumi's provider protocol reports per property."""
        return [(problem.split(" = ", 1)[0], problem) for problem in self.bare_problems]


@dataclass(frozen=True)
class Executor:
    """A principal granted the Session Executor role on the pool."""

    principal_id: str
    principal_type: str


@dataclass(frozen=True)
class PoolSettings:
    """The validated settings of one stack. Field names match the config keys in snake_case."""

    project: str
    stack: str
    location: str
    container_type: str
    max_sessions: int
    ready_sessions: int | None
    cooldown_seconds: int
    network_status: str
    pool_name: str
    resource_group_name: str
    executors: tuple[Executor, ...]
    assign_deployer: bool
    deployer_principal_type: str
    tags: Mapping[str, str] = field(default_factory=dict)
    protect: bool = False
    # The management lock level on the resource group, or None for no lock.
    lock: str | None = None
    # False: the pool goes into the existing group resource_group_name, which the stack does not manage.
    create_resource_group: bool = True

    def component_args(self) -> dict[str, Any]:
        """These settings as the component's arguments (CodeInterpreterPoolArgs: the Python names)."""
        args: dict[str, Any] = {
            "location": self.location,
            "container_type": self.container_type,
            "max_sessions": self.max_sessions,
            "cooldown_seconds": self.cooldown_seconds,
            "network_status": self.network_status,
            "pool_name": self.pool_name,
            "resource_group_name": self.resource_group_name,
            "create_resource_group": self.create_resource_group,
            "executors": [
                {"principal_id": executor.principal_id, "principal_type": executor.principal_type}
                for executor in self.executors
            ],
            "assign_deployer": self.assign_deployer,
            "deployer_principal_type": self.deployer_principal_type,
            "tags": dict(self.tags),
            "lock": self.lock or NO_LOCK,
            "protect": self.protect,
        }
        if self.ready_sessions is not None:
            args["ready_sessions"] = self.ready_sessions
        return args

    @property
    def resource_tags(self) -> dict[str, str]:
        """The stack's tags merged with the ones the program always sets."""
        return {
            **self.tags,
            MANAGED_BY_TAG: "pulumi",
            PROJECT_TAG: self.project,
            STACK_TAG: self.stack,
        }


@dataclass(frozen=True)
class SettingSpec:
    """How one config key is read: its type, its default and what is allowed (Pulumi.yaml describes it)."""

    key: str
    type: str  # "string" | "integer" | "boolean" | "list" | "map"
    default: Any
    allowed: str


# One table for every setting. Pulumi.yaml declares the same defaults for the keys its schema can
# express; a test proves the two agree. `None` means "unset" (readySessions) or "derived from the
# project and stack" (poolName, resourceGroupName).
SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "location",
        "string",
        "northcentralus",
        "an Azure region name in lowercase letters and digits, e.g. northcentralus",
    ),
    SettingSpec(
        "containerType",
        "string",
        "NodeLTS",
        f"one of {', '.join(CONTAINER_TYPES)}",
    ),
    SettingSpec(
        "maxSessions",
        "integer",
        5,
        f"a whole number from {MIN_SESSIONS} to {MAX_SESSIONS_LIMIT}",
    ),
    SettingSpec(
        "readySessions",
        "integer",
        None,
        "a whole number from 1 to maxSessions, or unset",
    ),
    SettingSpec(
        "cooldownSeconds",
        "integer",
        300,
        f"a whole number of seconds from {COOLDOWN_MIN_SECONDS} to {COOLDOWN_MAX_SECONDS}",
    ),
    SettingSpec(
        "networkStatus",
        "string",
        "EgressDisabled",
        f"one of {', '.join(NETWORK_STATUSES)}",
    ),
    SettingSpec(
        "poolName",
        "string",
        None,
        "3-63 characters: a lowercase letter, then lowercase letters and digits (^[a-z][a-z0-9]{2,62}$)",
    ),
    SettingSpec(
        "resourceGroupName",
        "string",
        None,
        "1-90 characters: letters, digits, _ - . ( ), not ending with a period",
    ),
    SettingSpec(
        "createResourceGroup",
        "boolean",
        True,
        "true (create the resource group) or false (resourceGroupName names a group that already exists)",
    ),
    SettingSpec(
        "executors",
        "list",
        (),
        "a list of {principalId: <object id GUID>, principalType: User|Group|ServicePrincipal}, no duplicates",
    ),
    SettingSpec(
        "assignDeployer",
        "boolean",
        True,
        "true or false",
    ),
    SettingSpec(
        "deployerPrincipalType",
        "string",
        "User",
        f"one of {', '.join(PRINCIPAL_TYPES)} (pipelines deploy as ServicePrincipal)",
    ),
    SettingSpec(
        "tags",
        "map",
        {},
        f"a map of strings: at most {MAX_USER_TAGS} tags, keys up to {MAX_TAG_KEY_LENGTH} characters without "
        f"{' '.join(FORBIDDEN_TAG_KEY_CHARACTERS)}, values up to {MAX_TAG_VALUE_LENGTH} characters; "
        f"{', '.join(RESERVED_TAGS)} are set by the program",
    ),
    SettingSpec(
        "protect",
        "boolean",
        False,
        "true or false",
    ),
    SettingSpec(
        "lock",
        "string",
        NO_LOCK,
        f"one of {', '.join(LOCK_CHOICES)} (ReadOnly also refuses every later change to the stack: "
        "set it back to none in a deploy of its own first)",
    ),
)
SETTINGS_BY_KEY: dict[str, SettingSpec] = {spec.key: spec for spec in SETTINGS}
DEFAULTS: dict[str, Any] = {spec.key: spec.default for spec in SETTINGS}


class _Problems:
    """Collects one sentence per bad setting."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, key: str, value: Any, expected: str) -> None:
        self.items.append(f"{key} = {_show(value)}: expected {expected}.")


def _show(value: Any) -> str:
    """Render a value the way a person wrote it, shortened when long."""
    try:
        text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    except (ValueError, RecursionError):  # an integer too long to print, nesting too deep to walk
        text = f"<a {type(value).__name__} too large to show>"
    if len(text) > _MAX_SHOWN_VALUE_CHARS:
        text = text[: _MAX_SHOWN_VALUE_CHARS - 3] + "..."
    return text


class _Invalid(Exception):
    """Raised by a converter; carries the explanation of what is allowed."""


def _as_string(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid
    return value


def _as_integer(value: Any) -> int:
    if isinstance(value, bool):
        raise _Invalid
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    # Every allowed number is small: a longer string is a mistake, not a number to convert.
    if isinstance(value, str) and re.fullmatch(rf"\s*[+-]?\d{{1,{_MAX_INTEGER_DIGITS}}}\s*", value):
        return int(value)
    raise _Invalid


def _as_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _Invalid


def _as_json(value: Any, kind: type) -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError) as error:  # RecursionError: absurdly deep nesting
            raise _Invalid from error
    if not isinstance(value, kind):
        raise _Invalid
    return value


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "string": _as_string,
    "integer": _as_integer,
    "boolean": _as_boolean,
    "list": lambda value: _as_json(value, list),
    "map": lambda value: _as_json(value, dict),
}


def _choice(problems: _Problems, key: str, value: str, choices: Sequence[str], allowed: str | None = None) -> str:
    """Check an enum value; suggest the right spelling when only the case is off."""
    if value in choices:
        return value
    hint = next((choice for choice in choices if choice.lower() == value.lower()), None)
    expected = allowed or f"one of {', '.join(choices)}"
    problems.add(key, value, f"{expected} (did you mean {hint}?)" if hint else expected)
    return value


def default_pool_name(project: str, stack: str) -> str:
    """Derive a pool name from the project and stack inside the spec's rule.

    The spec allows only lowercase letters and digits, so other characters are dropped; a name
    too long keeps a short hash of the full name so that two long stack names do not collide.
    """
    full = re.sub(r"[^a-z0-9]", "", f"{project}{stack}".lower())
    if not full[:1].isalpha():
        full = f"pool{full}"
    if len(full) > POOL_NAME_MAX_LENGTH:
        digest = hashlib.sha256(full.encode()).hexdigest()[:_POOL_NAME_HASH_CHARS]
        full = full[: POOL_NAME_MAX_LENGTH - _POOL_NAME_HASH_CHARS] + digest
    return full.ljust(3, "0")


def default_resource_group_name(project: str, stack: str) -> str:
    """Derive a resource group name, `rg-<project>-<stack>`, inside Azure's naming rule."""
    name = re.sub(r"[^-\w.()]", "-", f"rg-{project}-{stack}")[:RESOURCE_GROUP_NAME_MAX_LENGTH]
    return name.rstrip(".")


def _parse_executors(problems: _Problems, items: list[Any]) -> tuple[Executor, ...]:
    executors: list[Executor] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        key = f"executors[{index}]"
        if not isinstance(item, dict):
            problems.add(key, item, "a map {principalId: <GUID>, principalType: User|Group|ServicePrincipal}")
            continue
        unknown = sorted(set(item) - {"principalId", "principalType"})
        if unknown:
            problems.add(key, item, f"only the keys principalId and principalType (unknown: {', '.join(unknown)})")
        principal_id = item.get("principalId")
        if not _check_principal_id(problems, f"{key}.principalId", principal_id):
            continue
        principal_type = item.get("principalType")
        if not isinstance(principal_type, str):
            problems.add(f"{key}.principalType", principal_type, f"one of {', '.join(PRINCIPAL_TYPES)}")
            continue
        _choice(problems, f"{key}.principalType", principal_type, PRINCIPAL_TYPES)
        normalized = principal_id.lower()
        if normalized in seen:
            problems.add(
                f"{key}.principalId",
                principal_id,
                f"each principal once (it is already executors[{seen[normalized]}])",
            )
            continue
        seen[normalized] = index
        executors.append(Executor(normalized, principal_type))
    return tuple(executors)


def _check_principal_id(problems: _Problems, key: str, principal_id: Any) -> bool:
    if isinstance(principal_id, str) and GUID_PATTERN.fullmatch(principal_id):
        return True
    problems.add(
        key,
        principal_id,
        "an Entra ID object id GUID like 00000000-0000-0000-0000-000000000000 "
        "(az ad user show / az ad group show / az ad sp show --query id)",
    )
    return False


def _check_location(problems: _Problems, location: Any) -> None:
    if not isinstance(location, str):
        problems.add("location", location, SETTINGS_BY_KEY["location"].allowed)
    elif not LOCATION_PATTERN.fullmatch(location):
        compact = re.sub(r"[\s_-]", "", location.lower())
        hint = f" (did you mean {compact}?)" if LOCATION_PATTERN.fullmatch(compact) else ""
        problems.add("location", location, SETTINGS_BY_KEY["location"].allowed + hint)


def _check_group_name(problems: _Problems, name: Any) -> None:
    if not isinstance(name, str) or not RESOURCE_GROUP_NAME_PATTERN.fullmatch(name) or name.endswith("."):
        problems.add("resourceGroupName", name, SETTINGS_BY_KEY["resourceGroupName"].allowed)


def check_known(key: str, value: Any, *, stack: str, component: str | None = None) -> str:
    """Check one setting that became known later (`location`, `resourceGroupName` or
    `executors[<i>].principalId`) with the same rule and message as parse_settings; return it as used."""
    problems = _Problems()
    if key == "location":
        _check_location(problems, value)
    elif key == "resourceGroupName":
        _check_group_name(problems, value)
    elif _check_principal_id(problems, key, value):
        value = value.lower()
    if problems.items:
        raise SettingsError(problems.items, stack, component=component)
    return value


def _parse_tags(problems: _Problems, tags: dict[Any, Any]) -> dict[str, str]:
    if len(tags) > MAX_USER_TAGS:
        problems.add(
            "tags",
            tags,
            f"at most {MAX_USER_TAGS} tags ({MAX_TAGS} per resource, {len(RESERVED_TAGS)} set by the program)",
        )
    parsed: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name, value in tags.items():
        key = f"tags.{name}"
        if not isinstance(name, str):
            problems.add(key, name, "a tag name that is a string")
        elif name.lower() in seen:
            # Azure compares tag names without regard to case: one of the two would be lost.
            problems.add(key, value, f"each tag name once, ignoring case (it is already tags.{seen[name.lower()]})")
        elif not name or len(name) > MAX_TAG_KEY_LENGTH:
            problems.add(key, name, f"a tag name of 1 to {MAX_TAG_KEY_LENGTH} characters")
        elif any(char in FORBIDDEN_TAG_KEY_CHARACTERS for char in name):
            problems.add(key, name, f"a tag name without any of {' '.join(FORBIDDEN_TAG_KEY_CHARACTERS)}")
        elif name.lower() in RESERVED_TAGS:
            problems.add(key, value, "no value here: the program sets this tag itself; remove it")
        elif not isinstance(value, str):
            problems.add(key, value, 'a string (quote it in YAML, e.g. costCenter: "1234")')
        elif len(value) > MAX_TAG_VALUE_LENGTH:
            problems.add(key, value, f"a value of at most {MAX_TAG_VALUE_LENGTH} characters")
        else:
            parsed[name] = value
        if isinstance(name, str):
            seen.setdefault(name.lower(), name)
    return parsed


def parse_settings(
    raw: Mapping[str, Any],
    *,
    project: str,
    stack: str,
    deferred: Collection[str] = (),
    component: str | None = None,
) -> PoolSettings:
    """Validate a stack's raw config (keys without the namespace) and return its settings.

    `deferred` names settings that are given but known only later (another resource's output, for the
    component): they are not checked here, count as set, and keep a stand-in value the caller replaces.
    Raises SettingsError naming every bad key, its value and what is allowed (as the component's inputs
    when `component` names it).
    """
    problems = _Problems()
    for key in sorted(set(raw) - set(SETTINGS_BY_KEY)):
        close = difflib.get_close_matches(key, SETTINGS_BY_KEY, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        problems.add(key, raw[key], f"a known setting ({hint}known: {', '.join(SETTINGS_BY_KEY)})")

    values: dict[str, Any] = {}
    for spec in SETTINGS:
        value = raw.get(spec.key)
        if value is None:
            values[spec.key] = spec.default
            continue
        try:
            values[spec.key] = _CONVERTERS[spec.type](value)
        except _Invalid:
            problems.add(spec.key, value, spec.allowed)
            values[spec.key] = spec.default

    location = values["location"]
    if "location" not in deferred:
        _check_location(problems, location)

    container_type = _choice(problems, "containerType", values["containerType"], CONTAINER_TYPES)
    network_status = _choice(problems, "networkStatus", values["networkStatus"], NETWORK_STATUSES)
    deployer_type = _choice(problems, "deployerPrincipalType", values["deployerPrincipalType"], PRINCIPAL_TYPES)
    lock = _choice(problems, "lock", values["lock"], LOCK_CHOICES, allowed=SETTINGS_BY_KEY["lock"].allowed)

    max_sessions = values["maxSessions"]
    if not MIN_SESSIONS <= max_sessions <= MAX_SESSIONS_LIMIT:
        problems.add("maxSessions", raw.get("maxSessions"), SETTINGS_BY_KEY["maxSessions"].allowed)
    ready_sessions = values["readySessions"]
    if ready_sessions is not None and not 1 <= ready_sessions <= max_sessions:
        problems.add(
            "readySessions",
            raw.get("readySessions"),
            f"a whole number from 1 to maxSessions ({max_sessions})",
        )
    cooldown = values["cooldownSeconds"]
    if not COOLDOWN_MIN_SECONDS <= cooldown <= COOLDOWN_MAX_SECONDS:
        problems.add("cooldownSeconds", raw.get("cooldownSeconds"), SETTINGS_BY_KEY["cooldownSeconds"].allowed)

    # Derived only when unset: an explicit empty name is a mistake to report, not a default.
    pool_name = default_pool_name(project, stack) if values["poolName"] is None else values["poolName"]
    if not POOL_NAME_PATTERN.fullmatch(pool_name):
        problems.add("poolName", pool_name, SETTINGS_BY_KEY["poolName"].allowed)
    group_name = values["resourceGroupName"]
    create_group = values["createResourceGroup"]
    if "resourceGroupName" in deferred:
        group_name = DEFERRED
    elif group_name is None and not create_group:
        problems.add(
            "resourceGroupName",
            None,
            "the name of the existing resource group to deploy into, since createResourceGroup is false",
        )
        group_name = DEFERRED
    elif group_name is None:
        group_name = default_resource_group_name(project, stack)
    if group_name is not DEFERRED:
        _check_group_name(problems, group_name)
    if not create_group and lock != NO_LOCK:
        problems.add(
            "lock",
            lock,
            "none when createResourceGroup is false: the lock is on the resource group, which belongs to "
            "whoever created it (lock it there)",
        )

    executors = _parse_executors(problems, list(values["executors"]))
    tags = _parse_tags(problems, dict(values["tags"]))

    if problems.items:
        raise SettingsError(problems.items, stack, component=component)
    return PoolSettings(
        project=project,
        stack=stack,
        location=location,
        container_type=container_type,
        max_sessions=max_sessions,
        ready_sessions=ready_sessions,
        cooldown_seconds=cooldown,
        network_status=network_status,
        pool_name=pool_name,
        resource_group_name=group_name,
        executors=executors,
        assign_deployer=values["assignDeployer"],
        deployer_principal_type=deployer_type,
        tags=tags,
        protect=values["protect"],
        lock=None if lock == NO_LOCK else lock,
        create_resource_group=create_group,
    )
