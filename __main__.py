"""The Pulumi program: a NodeLTS dynamic-sessions pool, its executor roles, and the stack outputs."""

import pulumi
from pulumi_azure_native import authorization

from components.access import DeploymentIdentity, plan_executor_grants
from components.session_pool import CodeInterpreterPool, CodeInterpreterPoolArgs
from components.settings import CONFIG_NAMESPACE, SettingsError, parse_settings
from components.stack_config import read_namespace

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
