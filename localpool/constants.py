"""Values of the local pool itself (Azure's data-plane facts live in localpool/wire.py).

Every limit of the local stand-in is named once here, so the CLI help, the server and the
docs/local-pool.md all tell the same story.
"""

from __future__ import annotations

from localpool.wire import FILES_ROOT

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

# The container type a local pool runs unless told otherwise (as the program's default).
NODE_CONTAINER_TYPE = "NodeLTS"

DEFAULT_HOST = "127.0.0.1"
# The pool mirrors the Azure pool's sessionNetworkConfiguration.status; Azure's default is disabled.
EGRESS_ENABLED = "EgressEnabled"
EGRESS_DISABLED = "EgressDisabled"
NETWORK_STATUSES = (EGRESS_ENABLED, EGRESS_DISABLED)
DEFAULT_NETWORK_STATUS = EGRESS_DISABLED
# Where the CLI reads the token from when --token is not given (keeps it out of 'ps').
TOKEN_ENV_VAR = "LOCALPOOL_TOKEN"  # noqa: S105 - the name of a variable, not a secret
# Random bytes of the token the pool makes when none is given.
GENERATED_TOKEN_BYTES = 32
# The second line the CLI prints when it made the token (the variable the smoke check reads).
TOKEN_LINE_PREFIX = "DYNAMIC_SESSIONS_TOKEN="  # noqa: S105 - a variable name
DEFAULT_PORT = 0
DEFAULT_MAX_SESSIONS = 5
# Azure's cooldown must be 300-3600 s; locally any positive number is allowed (tests use tiny ones).
DEFAULT_COOLDOWN_SECONDS = 300.0

# Requests: bodies above 1 MiB are refused before being read.
MAX_REQUEST_BODY_BYTES = 1024 * 1024
# Connections waiting to be accepted (http.server's default of 5 resets bursts of clients).
LISTEN_BACKLOG = 128
# A connection that sends nothing for this long (headers, body, or the next keep-alive request), or
# reads nothing of an answer for this long, is closed.
REQUEST_READ_TIMEOUT_SECONDS = 30.0
# Total time for the TLS handshake, request line and headers of one request, counted from the moment
# the server starts waiting for it (the connection is accepted, or the previous answer was sent): a
# client dripping one header line at a time (slowloris) is cut here, not kept for 30 s per line.
# Past it the connection is closed without an answer (an idle keep-alive connection ends the same way).
REQUEST_HEAD_DEADLINE_SECONDS = 20.0
# Total time for a request body: this much, plus one second per REQUEST_BODY_MIN_BYTES_PER_SECOND of
# its size (or of its limit, for a chunked body). Past it the answer is 408 and the connection closes.
REQUEST_BODY_DEADLINE_SECONDS = 20.0
REQUEST_BODY_MIN_BYTES_PER_SECOND = 1024 * 1024
# Connections served at once (one thread each). When full, a new connection takes the place of the
# connection whose request head or body began longest ago (at least CONNECTION_EVICTABLE_AFTER_SECONDS
# ago) and is still arriving; else it waits up to CONNECTION_PLACE_WAIT_SECONDS for an answer to free
# a place (bursts of quick requests), then is answered 503 with Retry-After. The cap is also kept at
# most half the process's open-files limit, so sockets alone cannot exhaust the descriptors.
MAX_CONNECTIONS = 512
CONNECTION_EVICTABLE_AFTER_SECONDS = 1.0
CONNECTION_PLACE_WAIT_SECONDS = 1.0
# When accept() fails for lack of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), the
# server waits this long before the next accept instead of retrying in a busy loop.
ACCEPT_RETRY_SECONDS = 0.2
# Executions accepted but not finished, per session and per pool; more are answered 429.
MAX_QUEUED_EXECUTIONS_PER_SESSION = 32
MAX_QUEUED_EXECUTIONS_PER_POOL = 256
RETRY_AFTER_SECONDS = 1

# Node.js: the permission model (--experimental-permission) first shipped in Node 20.
MIN_NODE_MAJOR = 20
NODE_ENV_VAR = "LOCALPOOL_NODE"
NODE_INSTALL_HINT = "install Node.js 20 or newer (https://nodejs.org, or e.g. 'apt-get install nodejs')"

# PythonLTS: the session runner needs ast's top-level await (3.8) and the X | Y isinstance checks (3.10).
MIN_PYTHON_VERSION = (3, 10)
PYTHON_ENV_VAR = "LOCALPOOL_PYTHON"
PYTHON_INSTALL_HINT = "install Python 3.10 or newer (e.g. 'apt-get install python3')"
# Shell: commands run by bash; the session runner itself is Python (the same one as PythonLTS).
BASH_INSTALL_HINT = "install bash (e.g. 'apt-get install bash')"

# Containment of one session's Node.js process.
SESSION_HEAP_MB = 256
# How long a new Node.js process may take to report that it is ready.
INTERPRETER_START_TIMEOUT_SECONDS = 10.0
# Limits of one session's sandbox (localpool/sandbox.py), each with a command-line flag.
MIB = 1024 * 1024
# Private writable memory of the sandbox (RLIMIT_DATA: heap, Buffers, WebAssembly memories that are
# actually used; unlike an address-space cap it leaves WebAssembly's guard reservations alone).
DEFAULT_SESSION_MEMORY_MB = 512
# CPU time the sandbox may use over its whole life (RLIMIT_CPU); each execution also has its own
# wall-clock deadline (timeoutInSeconds, at most MAX_EXECUTION_SECONDS).
DEFAULT_SESSION_CPU_SECONDS = 600
# Processes and threads inside the sandbox (RLIMIT_NPROC, counted in the sandbox's user namespace).
DEFAULT_SESSION_PROCESSES = 64
# Open file descriptors per process (RLIMIT_NOFILE).
DEFAULT_SESSION_OPEN_FILES = 256
# Total disk use of the session directory (/mnt/data), measured by the server; one file can never
# be bigger than this either (RLIMIT_FSIZE).
DEFAULT_SESSION_DISK_MB = 100
# Entries (files, directories, links) the session directory may hold.
MAX_SESSION_DIRECTORY_ENTRIES = 10_000
# The sandbox's private /tmp is memory-backed, so it gets its own small size.
SESSION_TMP_BYTES = 16 * MIB
# How often the server measures the session directories against the disk limit.
DISK_CHECK_INTERVAL_SECONDS = 0.2
# Where the session directory appears inside the sandbox: Azure's files root, where uploads land.
SESSION_MOUNT_POINT = FILES_ROOT
# The unprivileged user (nobody) that session code runs as inside the sandbox, and the host user
# the sandbox is started as when the server runs as root.
SANDBOX_UID = 65534
SANDBOX_GID = 65534
SANDBOX_HOSTNAME = "sandbox"
BWRAP_INSTALL_COMMAND = "apt-get install bubblewrap"
# EgressEnabled sessions reach out through slirp4netns (user-mode networking in their own namespace).
SLIRP4NETNS_INSTALL_COMMAND = "apt-get install slirp4netns"
# libseccomp, which builds the system-call filter of every sandbox (localpool/seccomp.py).
LIBSECCOMP_INSTALL_COMMAND = "apt-get install libseccomp2"
USERNS_FIX_COMMAND = "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"
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
