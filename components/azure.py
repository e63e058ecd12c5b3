"""Azure facts the program depends on, each named once beside its source.

Pure Python with no Pulumi import, so the settings parser, the policy pack and the tests can all
use it. Sources: Microsoft Learn (Azure Container Apps dynamic sessions, Azure built-in roles,
naming rules and tag limits), the Azure REST API specs for Microsoft.App/sessionPools, and the
Azure CLI's `containerapp sessionpool` commands.
"""

from __future__ import annotations

import re

# Pulumi type tokens of the resources the program declares (pulumi-azure-native 3.x).
RESOURCE_GROUP_TYPE = "azure-native:resources:ResourceGroup"
SESSION_POOL_TYPE = "azure-native:app:ContainerAppsSessionPool"
ROLE_ASSIGNMENT_TYPE = "azure-native:authorization:RoleAssignment"
MANAGEMENT_LOCK_TYPE = "azure-native:authorization:ManagementLockAtResourceGroupLevel"

# Built-in role "Azure ContainerApps Session Executor": data action
# Microsoft.App/sessionPools/interpreters/execute/action, nothing else.
SESSION_EXECUTOR_ROLE_NAME = "Azure ContainerApps Session Executor"
SESSION_EXECUTOR_ROLE_ID = "0fb8eba5-a2bb-4abe-b1c1-49dfad359bb0"

# Built-in roles this project must never hand out (the policy pack names them in its messages).
OWNER_ROLE_ID = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR_ROLE_ID = "b24988ac-6180-47a0-ab88-20f7382dd24c"
USER_ACCESS_ADMINISTRATOR_ROLE_ID = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"

# Session pool limits: docs and the Azure CLI (max sessions; requests beyond it get HTTP 404),
# and the cooldown range that docs, the Azure CLI and azurerm all enforce.
MIN_SESSIONS = 1
MAX_SESSIONS_LIMIT = 600
COOLDOWN_MIN_SECONDS = 300
COOLDOWN_MAX_SECONDS = 3600

# Values of the pool's wire properties.
CONTAINER_TYPES: tuple[str, ...] = ("NodeLTS", "PythonLTS", "Shell")
NETWORK_STATUSES: tuple[str, ...] = ("EgressEnabled", "EgressDisabled")
PRINCIPAL_TYPES: tuple[str, ...] = ("User", "Group", "ServicePrincipal")
POOL_MANAGEMENT_TYPE_DYNAMIC = "Dynamic"
# Built-in interpreter types support only the Timed lifecycle.
LIFECYCLE_TYPE_TIMED = "Timed"

# Management locks (Microsoft.Authorization/locks, API 2020-05-01 in pulumi-azure-native 3.x; the
# Azure spec's LockLevel enum). CanNotDelete: resources can be read and changed, not deleted.
# ReadOnly: nothing under the scope can be changed or deleted through the control plane, role
# assignments included. Locks never touch the data plane: code keeps running in the pool.
LOCK_LEVELS: tuple[str, ...] = ("CanNotDelete", "ReadOnly")
LOCK_API_VERSION = "2020-05-01"

# The spec's sessionPoolName path parameter: ^[a-z][a-z0-9]*$, 3-63 characters (no hyphens,
# although the docs' examples use them: stay inside the spec).
POOL_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]{2,62}$")
POOL_NAME_MAX_LENGTH = 63

# Resource group names: 1-90 characters; letters (Unicode allowed), digits, underscores,
# hyphens, periods and parentheses; must not end with a period.
RESOURCE_GROUP_NAME_PATTERN = re.compile(r"^[-\w.()]{1,90}$")
RESOURCE_GROUP_NAME_MAX_LENGTH = 90

# Programmatic region names, as `az account list-locations --query [].name` prints them.
LOCATION_PATTERN = re.compile(r"^[a-z][a-z0-9]{1,39}$")

# Canonical GUID form used by Entra ID object ids.
GUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# Tag limits for a resource: at most 50 tags; names up to 512 characters (resource groups and
# most resources), values up to 256; these characters are not allowed in names.
MAX_TAGS = 50
MAX_TAG_KEY_LENGTH = 512
MAX_TAG_VALUE_LENGTH = 256
FORBIDDEN_TAG_KEY_CHARACTERS = "<>%&\\?/"


def role_definition_id(subscription_id: str, role_id: str = SESSION_EXECUTOR_ROLE_ID) -> str:
    """Return the full resource id of a built-in role definition in a subscription."""
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role_id}"


def resource_group_id(subscription_id: str, resource_group_name: str) -> str:
    """Return the resource id of a resource group."""
    return f"/subscriptions/{subscription_id}/resourceGroups/{resource_group_name}"


def session_pool_id(subscription_id: str, resource_group_name: str, pool_name: str) -> str:
    """Return the resource id a session pool will have (the scope of its role assignments)."""
    return f"{resource_group_id(subscription_id, resource_group_name)}/providers/Microsoft.App/sessionPools/{pool_name}"
