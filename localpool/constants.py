"""Values of the local pool that smoke/protocol.py does not define (Azure's shared facts live there).

Every limit of the local stand-in is named once here, so the CLI help, the server and the
README section all tell the same story.
"""

from __future__ import annotations

# Fixed, plausible values for the Azure-shaped base path of the local pool. The subscription is
# the all-zero GUID that Azure's documentation uses for examples; the pool name follows the
# spec's rule for pool names (^[a-z][a-z0-9]*$, 3-63 characters).
LOCAL_SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
LOCAL_RESOURCE_GROUP = "localpool-rg"
LOCAL_POOL_NAME = "localpool"
BASE_PATH = (
    f"/subscriptions/{LOCAL_SUBSCRIPTION_ID}/resourceGroups/{LOCAL_RESOURCE_GROUP}/sessionPools/{LOCAL_POOL_NAME}"
)

# The one line the CLI prints on stdout once the server is ready.
ENDPOINT_LINE_PREFIX = "POOL_MANAGEMENT_ENDPOINT="

# The only container type the local pool runs, and the request languages that mean it.
NODE_CONTAINER_TYPE = "NodeLTS"
JAVASCRIPT_LANGUAGES = frozenset({"javascript", "js", "node", "nodejs", "nodelts"})

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 0
DEFAULT_MAX_SESSIONS = 5
# Azure's cooldown must be 300-3600 s; locally any positive number is allowed (tests use tiny ones).
DEFAULT_COOLDOWN_SECONDS = 300.0

# Requests: bodies above 1 MiB are refused before being read.
MAX_REQUEST_BODY_BYTES = 1024 * 1024

# Node.js: the permission model (--experimental-permission) first shipped in Node 20.
MIN_NODE_MAJOR = 20
NODE_ENV_VAR = "LOCALPOOL_NODE"
NODE_INSTALL_HINT = "install Node.js 20 or newer (https://nodejs.org, or e.g. 'apt-get install nodejs')"

# Containment of one session's Node.js process.
SESSION_HEAP_MB = 256
# Address-space cap applied once the runner is up (V8 reserves ~0.7 GiB of address space at start).
SESSION_ADDRESS_SPACE_BYTES = 2 * 1024 * 1024 * 1024
# How long a new Node.js process may take to report that it is ready.
INTERPRETER_START_TIMEOUT_SECONDS = 10.0
# Largest file a session may write (RLIMIT_FSIZE; a bigger write fails with EFBIG). It bounds one
# file, not the directory: a session can still write many files until its cooldown ends it.
SESSION_FILE_SIZE_BYTES = 64 * 1024 * 1024
# Protocol messages from the runner longer than this are refused (the runner caps its own output).
MAX_PROTOCOL_LINE_BYTES = 1024 * 1024
# Random bytes of the marker that starts every protocol message (see runner.js).
FRAME_MARKER_BYTES = 16
# How much of the Node.js process's own stderr is kept to explain a crash.
STDERR_TAIL_BYTES = 4096
# How long to wait for a process to exit after SIGTERM before SIGKILL.
PROCESS_STOP_GRACE_SECONDS = 2.0

# Finished executions kept per session for GET /executions/<id>.
MAX_EXECUTION_RECORDS_PER_SESSION = 200
# The cooldown reaper wakes this often at most (and more often for tiny cooldowns).
MAX_REAPER_INTERVAL_SECONDS = 1.0
# Client-chosen execution ids (request header operation-id) must look like this.
OPERATION_ID_PATTERN = r"^[A-Za-z0-9._\-]{1,128}$"
