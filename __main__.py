"""The Pulumi program: a NodeLTS dynamic-sessions pool, its executor roles, and the stack outputs."""

import pulumi
from pulumi_azure_native import authorization

from components.access import DeploymentIdentity, plan_executor_grants
from components.session_pool import CodeInterpreterPool, CodeInterpreterPoolArgs
from components.settings import CONFIG_NAMESPACE, SettingsError, parse_settings
from components.stack_config import read_namespace, unread_keys

# A key in a namespace nothing reads is most likely a misspelled one: say so, since the CLI won't.
for key in unread_keys(CONFIG_NAMESPACE):
    pulumi.log.warn(
        f"The config key {key!r} is read by nothing (this program reads {CONFIG_NAMESPACE}:<name>), so it has "
        f"no effect; did you mean {CONFIG_NAMESPACE}:{key.split(':', 1)[-1]}? Fix or remove it in the stack file."
    )

# Everything is validated before the first resource is registered: a user mistake stops the
# program with one message and no traceback, and nothing is half-created.
try:
    settings = parse_settings(read_namespace(CONFIG_NAMESPACE), project=pulumi.get_project(), stack=pulumi.get_stack())
    client = authorization.get_client_config()
    identity = DeploymentIdentity(subscription_id=client.subscription_id, object_id=client.object_id)
    grants = plan_executor_grants(settings, identity)
except SettingsError as error:
    raise pulumi.RunError(str(error)) from None

pool = CodeInterpreterPool("pool", CodeInterpreterPoolArgs(settings=settings, executor_grants=grants))

for name, value in pool.outputs.items():
    pulumi.export(name, value)
