"""The component: a dynamic-sessions code-interpreter pool, its executor roles and, when asked, its resource
group and a management lock on it.

`CodeInterpreterPool(name, args, opts)` takes plain inputs (`CodeInterpreterPoolArgs`, a TypedDict: what
Pulumi's component analyzer reads to make the package's schema), validates them itself and plans its role
assignments itself. Nothing is registered while a known input is bad; an input given as another resource's
output is checked once it is known, before the resources that use it are created.
"""

from collections.abc import Callable
from typing import Any, TypedDict

import pulumi
from pulumi_azure_native import app, authorization, resources

from components.access import (
    DEPLOYER_LABEL,
    DeploymentIdentity,
    check_not_deployer,
    deployer_executor,
    role_assignment_name,
    subscription_of,
)
from components.azure import LIFECYCLE_TYPE_TIMED, POOL_MANAGEMENT_TYPE_DYNAMIC, role_definition_id, session_pool_id
from components.settings import (
    CONFIG_NAMESPACE,
    NO_LOCK,
    SETTINGS,
    SETTINGS_BY_KEY,
    PoolSettings,
    SettingsError,
    check_known,
    parse_settings,
)

# The component's Pulumi type token, <package>:<module>:<Type>.
COMPONENT_TYPE = f"{CONFIG_NAMESPACE}:index:CodeInterpreterPool"


class Executor(TypedDict):
    """A principal to grant the Azure ContainerApps Session Executor role on the pool."""

    principal_id: pulumi.Input[str]
    """The principal's Entra ID object id (a GUID), e.g. a group's id or a managed identity's principalId."""
    principal_type: str
    """User, Group or ServicePrincipal (a managed identity is a ServicePrincipal)."""


class CodeInterpreterPoolArgs(TypedDict, total=False):
    """The inputs of a CodeInterpreterPool; every one may be left out."""

    location: pulumi.Input[str]
    """Azure region of the pool and of the group it creates, lowercase letters and digits. Default: northcentralus."""
    container_type: str
    """The pool's built-in code interpreter: NodeLTS, PythonLTS or Shell. Default: NodeLTS."""
    max_sessions: int
    """Most sessions alive at once, 1 to 600 (scaleConfiguration.maxConcurrentSessions). Default: 5."""
    ready_sessions: int
    """Sessions kept warm, 1 to maxSessions (scaleConfiguration.readySessionInstances). Default: unset."""
    cooldown_seconds: int
    """Idle seconds before a session is deleted, 300 to 3600 (Timed lifecycle). Default: 300."""
    network_status: str
    """EgressEnabled or EgressDisabled: whether session code may reach the network. Default: EgressDisabled."""
    pool_name: str
    """The pool's name, ^[a-z][a-z0-9]{2,62}$. Default: the project and stack names, letters and digits only."""
    resource_group_name: pulumi.Input[str]
    """1-90 letters, digits, _ - . ( ), not ending in a period. Default: rg-<project>-<stack>."""
    create_resource_group: bool
    """Create the resource group (true), or deploy into the existing group resourceGroupName (false). Default: true."""
    executors: list[Executor]
    """Principals granted the Session Executor role on the pool, each once. Default: none."""
    assign_deployer: bool
    """Grant the identity running the deploy (getClientConfig's objectId) the role too. Default: true."""
    deployer_principal_type: str
    """The deployer's principal type: User, Group or ServicePrincipal (for pipelines). Default: User."""
    tags: dict[str, str]
    """Tags of the group and the pool (with managed-by, pulumi-project, pulumi-stack): at most 47. Default: none."""
    lock: str
    """A management lock on the group it creates: none, CanNotDelete or ReadOnly. Default: none."""
    protect: bool
    """Protect the resource group and the pool from deletion by Pulumi. Default: false."""


# Each input's schema name is the settings key of the same meaning (location -> location,
# max_sessions -> maxSessions): one table of rules, defaults and messages for stacks and the component.
SETTING_OF_INPUT: dict[str, str] = {
    "".join(part if i == 0 else part.title() for i, part in enumerate(name.split("_"))): name
    for name in CodeInterpreterPoolArgs.__annotations__
}
assert set(SETTING_OF_INPUT) == {spec.key for spec in SETTINGS}, "every setting is an input and back"


def lock_name(settings: PoolSettings) -> str:
    """The management lock's name: fixed per pool, so changing the level updates the lock in place."""
    return f"{settings.pool_name}-lock"


def lock_notes(settings: PoolSettings) -> str:
    """What someone who meets the lock in the portal reads: who owns it and how it is lifted."""
    return (
        f"Managed by Pulumi stack {settings.stack} of project {settings.project}. To lift it, set "
        f"{CONFIG_NAMESPACE}:lock to {NO_LOCK} and run pulumi up (docs/teardown.md)."
    )


def _placeholder_guid(index: int) -> str:
    """A valid stand-in for executors[index].principalId while its value is another resource's output."""
    return f"00000000-0000-4000-8000-{index:012x}"


def _later(value: Any, check: Callable[[Any], Any]) -> Any:
    """`check(value)` now for a plain value; for an output, once it is known (its result, as an output)."""
    if isinstance(value, pulumi.Output):
        return value.apply(_reported(check))
    return check(value)


def _reported(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`function` for an `apply`: a SettingsError it raises stops the deployment as Pulumi's RunError, whose
    message the CLI shows as it is (a ValueError would come wrapped in the SDK's serialization notes)."""

    def run(value: Any) -> Any:
        try:
            return function(value)
        except SettingsError as error:
            raise pulumi.RunError(str(error)) from None

    return run


def _combine(function: Callable[..., str], *values: pulumi.Input[str]) -> pulumi.Input[str]:
    """`function(*values)`: a plain string when every value is one, else an output."""
    if all(isinstance(value, str) for value in values):
        return function(*values)
    return pulumi.Output.all(*values).apply(lambda known: function(*known))


def _executor_items(items: list[Any]) -> tuple[list[Any], dict[int, Any]]:
    """The executors as settings items ({principalId, principalType}), with a stand-in for each principal id
    not known yet; and those ids by position."""
    normalized: list[Any] = []
    pending: dict[int, Any] = {}
    for index, item in enumerate(items):
        if isinstance(item, dict):
            # Python programs give the analyzer's Python names; the provider protocol the schema's.
            item = {
                {"principal_id": "principalId", "principal_type": "principalType"}.get(k, k): v for k, v in item.items()
            }
            principal = item.get("principalId")
            if isinstance(principal, pulumi.Output) or _is_unknown(principal):
                pending[index] = principal
                item["principalId"] = _placeholder_guid(index)
        normalized.append(item)
    return normalized, pending


def _is_unknown(value: Any) -> bool:
    """Whether a value is a preview's unknown (as the provider protocol hands it to a component)."""
    return isinstance(value, pulumi.output.Unknown)


class CodeInterpreterPool(pulumi.ComponentResource):
    """A dynamic-sessions code-interpreter pool with the Session Executor role granted on the pool only."""

    resource_group_name: pulumi.Output[str]
    """The resource group of the pool."""
    session_pool_name: pulumi.Output[str]
    """The session pool's name."""
    session_pool_id: pulumi.Output[str]
    """The session pool's Azure resource id (the scope of its role assignments)."""
    pool_management_endpoint: pulumi.Output[str]
    """The pool management endpoint clients send code to, with a token for https://dynamicsessions.io."""
    location: pulumi.Output[str]
    """The pool's Azure region."""
    container_type: pulumi.Output[str]
    """The pool's code interpreter: NodeLTS, PythonLTS or Shell."""
    network_status: pulumi.Output[str]
    """EgressEnabled or EgressDisabled."""
    executor_principal_ids: pulumi.Output[list[str]]
    """The object ids granted the Session Executor role on the pool (the deployer first when assigned)."""
    lock: pulumi.Output[str]
    """The management lock level on the resource group: none, CanNotDelete or ReadOnly."""

    def __init__(self, name: str, args: CodeInterpreterPoolArgs, opts: pulumi.ResourceOptions | None = None):
        settings, later = self._validate(name, args)
        # The deployer's identity is asked for only when it is granted; the subscription then comes with it.
        identity = None
        if settings.assign_deployer:
            client = authorization.get_client_config(opts=_invoke_options(opts))
            identity = DeploymentIdentity(subscription_id=client.subscription_id, object_id=client.object_id)
        deployer = deployer_executor(settings, identity, component=name) if identity else None
        # Everything known is valid: only now is anything registered.
        super().__init__(COMPONENT_TYPE, name, None, opts)
        # Names are fixed (not auto-named), so a replacement must delete the old resource first.
        kept = pulumi.ResourceOptions(parent=self, protect=settings.protect, delete_before_replace=True)
        location = later.get("location", settings.location)
        group_input = later.get("resourceGroupName", settings.resource_group_name)
        group_name = group_input

        self.resource_group: resources.ResourceGroup | None = None
        if settings.create_resource_group:
            self.resource_group = resources.ResourceGroup(
                f"{name}-rg",
                resource_group_name=group_name,
                location=location,
                tags=settings.resource_tags,
                opts=kept,
            )
            group_name = self.resource_group.name

        scale: app.ScaleConfigurationArgsDict = {"max_concurrent_sessions": settings.max_sessions}
        if settings.ready_sessions is not None:
            scale["ready_session_instances"] = settings.ready_sessions
        self.session_pool = app.ContainerAppsSessionPool(
            f"{name}-pool",
            resource_group_name=group_name,
            session_pool_name=settings.pool_name,
            location=location,
            # A plain string: the SDK's ContainerType enum lacks NodeLTS, but the API's enum is open.
            container_type=settings.container_type,
            pool_management_type=POOL_MANAGEMENT_TYPE_DYNAMIC,
            scale_configuration=scale,
            dynamic_pool_configuration={
                "lifecycle_configuration": {
                    "lifecycle_type": LIFECYCLE_TYPE_TIMED,
                    "cooldown_period_in_seconds": settings.cooldown_seconds,
                }
            },
            session_network_configuration={"status": settings.network_status},
            tags=settings.resource_tags,
            opts=kept,
        )

        # The assignment names and the role's id never wait for Azure when the subscription and the group
        # are known (a preview shows the names the deploy uses); otherwise they follow the pool's id.
        scope_id: pulumi.Input[str] = self.session_pool.id
        role_id: pulumi.Input[str] = self.session_pool.id.apply(lambda pool: role_definition_id(subscription_of(pool)))
        if identity is not None:
            role_id = role_definition_id(identity.subscription_id)
            if isinstance(group_input, str):
                scope_id = session_pool_id(identity.subscription_id, group_input, settings.pool_name)

        def grant(label: str, principal_id: pulumi.Input[str], principal_type: str) -> authorization.RoleAssignment:
            # Least privilege: each grant is scoped to the pool itself, never the group or subscription.
            return authorization.RoleAssignment(
                f"{name}-executor-{label}",
                role_assignment_name=_combine(role_assignment_name, scope_id, principal_id),
                role_definition_id=role_id,
                principal_id=principal_id,
                principal_type=principal_type,
                scope=self.session_pool.id,
                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
            )

        def not_deployer(index: int, principal_id: Any) -> Any:
            if deployer is not None and isinstance(principal_id, str):
                check_not_deployer(index, principal_id, deployer.principal_id, settings.stack, name)
            return principal_id

        grants = [(DEPLOYER_LABEL, deployer.principal_id, deployer.principal_type)] if deployer else []
        for index, executor in enumerate(settings.executors):
            principal_id = later.get(f"executors[{index}].principalId", executor.principal_id)
            principal_id = _later(principal_id, lambda known, index=index: not_deployer(index, known))
            # Named by principal when it is known now (stable whatever the order); by position otherwise.
            label = executor.principal_id if isinstance(principal_id, str) else f"{index}"
            grants.append((label, principal_id, executor.principal_type))
        self.role_assignments = [grant(*planned) for planned in grants]

        # A whole list known later (from another language, holding another resource's output): its grants
        # are declared once it is known, named by position.
        later_grants: pulumi.Output[list[authorization.RoleAssignment]] = pulumi.Output.from_input([])
        if "executors" in later:

            def grant_all(items: list[Any]) -> list[authorization.RoleAssignment]:
                executors, pending = _executor_items(items)
                parsed = parse_settings(
                    {"executors": executors}, project=settings.project, stack=settings.stack, component=name
                ).executors
                return [
                    grant(
                        f"{index}",
                        not_deployer(index, pending.get(index, who.principal_id)),
                        who.principal_type,
                    )
                    for index, who in enumerate(parsed)
                ]

            later_grants = later["executors"].apply(_reported(grant_all))

        # The lock waits for every other resource: a ReadOnly lock taken earlier would refuse the
        # pool and the role assignments. Pulumi deletes dependents first, so `pulumi destroy`
        # removes the lock before anything it guards. It is not `protect`ed itself: it is the
        # protection, and `lock: none` must be able to delete it with a plain `pulumi up`.
        self.management_lock = None
        if settings.lock is not None:
            self.management_lock = authorization.ManagementLockAtResourceGroupLevel(
                f"{name}-lock",
                resource_group_name=group_name,
                lock_name=lock_name(settings),
                level=settings.lock,
                notes=lock_notes(settings),
                opts=pulumi.ResourceOptions(
                    parent=self,
                    delete_before_replace=True,
                    depends_on=[self.session_pool, *self.role_assignments]
                    if "executors" not in later
                    else later_grants.apply(lambda known: [self.session_pool, *self.role_assignments, *known]),
                ),
            )

        self.resource_group_name = pulumi.Output.from_input(group_name)
        self.session_pool_name = self.session_pool.name
        self.session_pool_id = self.session_pool.id
        self.pool_management_endpoint = self.session_pool.pool_management_endpoint
        self.location = self.session_pool.location
        self.container_type = self.session_pool.container_type
        self.network_status = self.session_pool.session_network_configuration.apply(lambda net: net and net.status)
        self.executor_principal_ids = pulumi.Output.all(
            pulumi.Output.all(*(ra.principal_id for ra in self.role_assignments)),
            later_grants.apply(lambda known: pulumi.Output.all(*(ra.principal_id for ra in known))),
        ).apply(lambda both: [*both[0], *both[1]])
        self.lock = (
            self.management_lock.level if self.management_lock is not None else pulumi.Output.from_input(NO_LOCK)
        )
        self.register_outputs(self.outputs)

    @staticmethod
    def _validate(name: str, args: CodeInterpreterPoolArgs) -> tuple[PoolSettings, dict[str, Any]]:
        """Check every known input at once (SettingsError naming each bad one); return the settings and, by
        input path, the inputs known only later, each to be checked once known."""
        raw: dict[str, Any] = {}
        later: dict[str, Any] = {}
        for key, python_name in SETTING_OF_INPUT.items():
            value = args.get(python_name)
            # The provider protocol carries numbers as floats: 5.0 is the 5 the program wrote.
            if isinstance(value, float) and value.is_integer() and SETTINGS_BY_KEY[key].type == "integer":
                value = int(value)
            if value is not None:
                raw[key] = value
        for key in ("location", "resourceGroupName"):
            if isinstance(raw.get(key), pulumi.Output):
                later[key] = raw.pop(key)
        executors = raw.get("executors")
        if isinstance(executors, pulumi.Output):
            # Through the provider protocol a list holding another resource's output arrives as one output.
            later["executors"] = raw.pop("executors")
        elif isinstance(executors, list):
            raw["executors"], pending = _executor_items(executors)
            later.update({f"executors[{index}].principalId": value for index, value in pending.items()})
        stack = pulumi.get_stack()
        settings = parse_settings(raw, project=pulumi.get_project(), stack=stack, deferred=later.keys(), component=name)

        def checked(key: str) -> Callable[[Any], Any]:
            return lambda value: value if _is_unknown(value) else check_known(key, value, stack=stack, component=name)

        return settings, {
            key: _later(value, checked(key)) if key != "executors" else value for key, value in later.items()
        }

    @property
    def outputs(self) -> dict[str, pulumi.Output]:
        """The component's outputs, by their schema names: what a stack exports."""
        return {
            "resourceGroupName": self.resource_group_name,
            "sessionPoolName": self.session_pool_name,
            "sessionPoolId": self.session_pool_id,
            "poolManagementEndpoint": self.pool_management_endpoint,
            "location": self.location,
            "containerType": self.container_type,
            "networkStatus": self.network_status,
            "executorPrincipalIds": self.executor_principal_ids,
            "lock": self.lock,
        }


def _invoke_options(opts: pulumi.ResourceOptions | None) -> pulumi.InvokeOptions | None:
    """The component's azure-native provider, if it was given one, for the getClientConfig invoke."""
    if opts is None:
        return None
    provider = opts.provider
    if provider is None and isinstance(opts.providers, dict):
        provider = opts.providers.get("azure-native")
    return pulumi.InvokeOptions(provider=provider) if provider is not None else None
