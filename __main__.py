"""The Pulumi program: read the stack's config, create one CodeInterpreterPool from it, export its outputs."""

import pulumi

from components.session_pool import CodeInterpreterPool
from components.settings import CONFIG_NAMESPACE, SettingsError, parse_settings
from components.stack_config import read_namespace, unread_keys

# A key in a namespace nothing reads is most likely a misspelled one: say so, since the CLI won't.
for key in unread_keys(CONFIG_NAMESPACE):
    pulumi.log.warn(
        f"The config key {key!r} is read by nothing (this program reads {CONFIG_NAMESPACE}:<name>), so it has "
        f"no effect; did you mean {CONFIG_NAMESPACE}:{key.split(':', 1)[-1]}? Fix or remove it in the stack file."
    )

# A user mistake stops the program with one message naming the stack's keys, no traceback, and nothing
# registered: the config is read into the component's arguments (unknown keys and the CLI's strings are the
# stack's own concerns), and the component checks them again with the deployer's identity before it registers.
try:
    settings = parse_settings(read_namespace(CONFIG_NAMESPACE), project=pulumi.get_project(), stack=pulumi.get_stack())
    pool = CodeInterpreterPool("pool", settings.component_args())
except SettingsError as error:
    raise pulumi.RunError(str(error.for_stack(pulumi.get_stack()))) from None

for name, value in pool.outputs.items():
    pulumi.export(name, value)
