"""Session code tried as an attacker would (issue 8): each attack is contained by the sandbox, and
the pool still answers hello-world afterwards.

These tests need bubblewrap: without it the pool refuses to start and they fail with its one-line
message (never skipped; CI installs bubblewrap with scripts/ensure-bwrap.sh). To see them fail
without the fix, run them once with LOCALPOOL_ATTACKS_NO_SANDBOX=1 (the pool then runs with
sandbox=False, as `python -m localpool --no-sandbox` does).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from localpool import LocalPool
from localpool.constants import (
    EGRESS_ENABLED,
    MAX_QUEUED_EXECUTIONS_PER_POOL,
    MAX_QUEUED_EXECUTIONS_PER_SESSION,
    SANDBOX_HOSTNAME,
    SESSION_MOUNT_POINT,
)
from localpool.disk import DIR_FLAGS
from localpool.sandbox import SandboxLimits
from localpool.wire import MAX_EXECUTION_SECONDS
from smoke.protocol import API_2024_10, EXECUTIONS_PATH, HELLO_WORLD_CODE, HELLO_WORLD_STDOUT, STATUS_FAILED
from tests.support.localpool_helpers import (
    NO_CONNECTION_SECONDS,
    PROJECT_ROOT,
    SANDBOXED,
    SMALL_DISK_MB,
    TOKEN,
    PoolClient,
    host_facts,
    new_identifier,
    no_connection,
    process_alive,
    raw_request,
    wait_until,
)

HANG_TIMEOUT_SECONDS = 2
# Well above the 64 KiB a pipe holds: the write to a busy runner blocks.
BIG_CODE_BYTES = 200 * 1024
CONCURRENT_CLIENTS = 200


def _pool(**options: object) -> LocalPool:
    return LocalPool(token=TOKEN, sandbox=SANDBOXED, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pool() -> Iterator[LocalPool]:
    """The module's pool (EgressDisabled, as the program's default), sandboxed unless told otherwise."""
    # Each test opens a few sessions; a short cooldown ends them soon after (none waits that long).
    options = {"max_sessions": 48, "cooldown_seconds": 3.0, "limits": SandboxLimits(disk_mb=SMALL_DISK_MB)}
    with _pool(**options) as local_pool:
        yield local_pool


@pytest.fixture(scope="module")
def egress_pool() -> Iterator[LocalPool]:
    """A pool with EgressEnabled: sessions share the host's network."""
    with _pool(max_sessions=8, network_status=EGRESS_ENABLED) as local_pool:
        yield local_pool


def _result(client: PoolClient, code: str, identifier: str | None = None, **fields: object) -> str:
    body = client.run(identifier or new_identifier("attack"), code, **fields)
    return str(body["result"]["executionResult"])


def assert_still_serving(endpoint: str) -> None:
    """The pool answers a new session's hello-world."""
    with PoolClient(endpoint) as fresh:
        body = fresh.run(new_identifier("after"), HELLO_WORLD_CODE["NodeLTS"])
        assert body["result"]["stdout"] == HELLO_WORLD_STDOUT, body


# -- files ------------------------------------------------------------------------------------


def test_process_report_cannot_write_outside_the_session(client: PoolClient, pool: LocalPool, tmp_path: Path) -> None:
    target = tmp_path / "planted"
    target.mkdir()
    target.chmod(0o777)
    victim = new_identifier("victim")
    client.run(victim, "1")
    _, victim_dir = host_facts(pool, victim)
    for directory in (target, victim_dir):
        code = (
            f"process.report.directory = {str(directory)!r}; process.report.filename = 'x.json'; "
            "try { process.report.writeReport() } catch (e) { e.code }"
        )
        client.run(new_identifier("attack"), code)
        assert not (directory / "x.json").exists()
    assert list(target.iterdir()) == []
    assert_still_serving(pool.endpoint)


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "/etc/shadow", "/root/.bashrc", str(PROJECT_ROOT / "README.md"), "/proc/1/environ"]
)
def test_host_files_are_not_readable(client: PoolClient, pool: LocalPool, path: str) -> None:
    code = f"try {{ require('fs').readFileSync({path!r}, 'utf8').slice(0, 40) }} catch (e) {{ 'refused ' + e.code }}"
    assert _result(client, code).startswith("refused ")
    assert_still_serving(pool.endpoint)


def test_the_host_tmp_and_home_are_not_visible(client: PoolClient, pool: LocalPool) -> None:
    with tempfile.NamedTemporaryFile(dir="/tmp", prefix="host-only-") as planted:
        for path in (planted.name, str(Path.home()), str(PROJECT_ROOT)):
            code = f"try {{ require('fs').statSync({path!r}); 'visible' }} catch (e) {{ e.code }}"
            assert _result(client, code) in {"ENOENT", "ERR_ACCESS_DENIED"}
    assert_still_serving(pool.endpoint)


def test_symlinks_and_hard_links_do_not_lead_out(client: PoolClient, pool: LocalPool, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    identifier = new_identifier("links")
    code = f"""
        const fs = require('fs');
        const tries = [];
        for (const [kind, make] of [['symlink', fs.symlinkSync], ['link', fs.linkSync]]) {{
          try {{ make({str(secret)!r}, '{SESSION_MOUNT_POINT}/' + kind); tries.push(kind + ' made'); }}
          catch (e) {{ tries.push(kind + ' ' + e.code); }}
          try {{ tries.push(fs.readFileSync('{SESSION_MOUNT_POINT}/' + kind, 'utf8')); }}
          catch (e) {{ tries.push(e.code); }}
        }}
        tries.join(' | ')
    """
    outcome = _result(client, code, identifier)
    assert "host secret" not in outcome
    # Nor does the server follow what the session left behind.
    _, workdir = host_facts(pool, identifier)
    for entry in workdir.iterdir():
        assert not entry.is_symlink() or entry.resolve() != secret
    assert secret.read_text() == "host secret"
    assert_still_serving(pool.endpoint)


def test_a_second_session_cannot_read_the_first_ones_globals_or_files(client: PoolClient, pool: LocalPool) -> None:
    first, second = new_identifier("first"), new_identifier("second")
    client.run(first, "var secret = 's3cr3t'; require('fs').writeFileSync('note.txt', secret)")
    _, first_dir = host_facts(pool, first)
    assert _result(client, "typeof secret", second) == "undefined"
    assert _result(client, "require('fs').existsSync('note.txt')", second) == "false"
    code = f"try {{ require('fs').readFileSync({str(first_dir / 'note.txt')!r}, 'utf8') }} catch (e) {{ e.code }}"
    assert _result(client, code, second) != "s3cr3t"
    assert_still_serving(pool.endpoint)


def test_disk_fill_ends_the_session_and_frees_its_files(client: PoolClient, pool: LocalPool) -> None:
    identifier = new_identifier("fill")
    client.run(identifier, "1")
    _, workdir = host_facts(pool, identifier)
    chunk_mb = 2
    code = f"""
        const fs = require('fs');
        const chunk = Buffer.alloc({chunk_mb} * 1024 * 1024, 1);
        let written = 0;
        (async () => {{
          for (let i = 0; ; i++) {{
            fs.writeFileSync('fill-' + i, chunk); written += {chunk_mb};
            await new Promise((resolve) => setTimeout(resolve, 20));
          }}
        }})()
    """
    body = client.run(identifier, code, timeoutInSeconds=20)
    assert body["status"] == STATUS_FAILED
    assert body["error"]["error"]["code"] == "SessionDiskLimitExceeded", body
    assert f"disk limit of {SMALL_DISK_MB} MiB" in body["error"]["error"]["message"]
    assert wait_until(lambda: not workdir.exists(), timeout=5)
    assert _result(client, "require('fs').readdirSync('.').length", identifier) == "0"
    assert_still_serving(pool.endpoint)


def test_disk_burst_that_returns_at_once_is_reported(client: PoolClient, pool: LocalPool) -> None:
    # Written and returned before the pool's periodic check comes round: the measurement made as the
    # execution finishes must catch it, or the answer says Succeeded and the session vanishes silently.
    identifier = new_identifier("burst")
    chunk_mb = SMALL_DISK_MB // 4
    code = f"""
        const chunk = Buffer.alloc({chunk_mb} * 1024 * 1024, 1);
        for (let i = 0; i < 5; i++) require('fs').writeFileSync('burst-' + i, chunk);
        'written'
    """
    body = client.run(identifier, code)
    assert body["status"] == STATUS_FAILED, body
    assert body["error"]["error"]["code"] == "SessionDiskLimitExceeded", body
    assert f"disk limit of {SMALL_DISK_MB} MiB" in body["error"]["error"]["message"]
    assert _result(client, "require('fs').readdirSync('.').length", identifier) == "0"
    assert_still_serving(pool.endpoint)


def _descriptors_on(directory: Path) -> list[str]:
    """This process's descriptors open on directory, removed or not (the in-process pool's are this process's)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{name}") in (str(directory), f"{directory} (deleted)"):
                found.append(name)
    return found


def test_a_session_keeps_its_directory_open_until_it_ends_however_it_ends(client: PoolClient, pool: LocalPool) -> None:
    # The disk checks walk a session's directory from one descriptor kept for its life.
    kept, deleted, breached = (new_identifier(name) for name in ("kept", "deleted", "breached"))
    directories = {}
    for identifier in (kept, deleted, breached):
        client.run(identifier, "1")
        directories[identifier] = host_facts(pool, identifier)[1]
        assert len(_descriptors_on(directories[identifier])) == 1
    assert pool.manager.delete(deleted)
    burst = (
        f"for (let i = 0; i < 5; i++) require('fs').writeFileSync('b' + i, Buffer.alloc({SMALL_DISK_MB // 4} << 20))"
    )
    body = client.run(breached, burst)
    assert body["error"]["error"]["code"] == "SessionDiskLimitExceeded", body
    assert _descriptors_on(directories[deleted]) == []
    assert _descriptors_on(directories[breached]) == []
    assert len(_descriptors_on(directories[kept])) == 1
    assert _result(client, "1 + 1", kept) == "2"


def _processes_naming(directory: Path) -> list[int]:
    """Processes whose command line names directory (a sandbox's bwrap binds its session directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and str(directory).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def test_a_session_whose_directory_cannot_be_opened_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    # Out of descriptors as a new session adopts the spare sandbox: refused as no room (Azure's 404), and
    # neither the spare's sandbox nor its directory is left behind.
    with _pool(max_sessions=4) as local_pool:
        manager = local_pool.manager
        root = manager.root
        assert wait_until(lambda: manager._spare is not None, timeout=20), "the spare sandbox, started and ready"
        (spare_directory,) = root.glob("session-*")
        assert _processes_naming(spare_directory)
        real_open = os.open

        def out_of_descriptors(path: object, flags: int, *args: object, **kwargs: object) -> int:
            # Only the session's own open of its directory (the clean-up's opens must still work).
            if flags == DIR_FLAGS and str(path).startswith(str(root / "session-")):
                raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
            return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr("localpool.sessions.os.open", out_of_descriptors)
        with PoolClient(local_pool.endpoint) as client:
            refused = client.execute(new_identifier("nofd"), "1")
            monkeypatch.undo()
            assert refused.status_code == 404, refused.text
            assert refused.json()["error"]["code"] == "SessionLimitReached"
            assert "cannot open a new session's directory: Too many open files" in refused.json()["error"]["message"]
            assert manager.live_sessions() == []
            assert not spare_directory.exists()
            assert wait_until(lambda: not _processes_naming(spare_directory), timeout=5)
            assert _result(client, "1 + 1", new_identifier("after")) == "2"


def test_one_file_over_the_disk_limit_is_reported_as_such(client: PoolClient, pool: LocalPool) -> None:
    identifier = new_identifier("bigfile")
    code = f"require('fs').writeFileSync('big', Buffer.alloc({SMALL_DISK_MB + 1} * 1024 * 1024, 1)); 'written'"
    body = client.run(identifier, code)
    assert body["status"] == STATUS_FAILED, body
    assert body["error"]["error"]["code"] == "SessionDiskLimitExceeded", body
    assert _result(client, "require('fs').readdirSync('.').length", identifier) == "0"
    assert_still_serving(pool.endpoint)


# Written, then held while the pool measures: the execution waits long enough for several checks.
_HOLD_THEN_WAIT = """
const fs = require('fs');
globalThis.kept = [];
const chunk = Buffer.alloc(%d * 1024 * 1024, 1);
%s
new Promise((resolve) => setTimeout(() => resolve('still alive'), 5000))
"""


@pytest.mark.parametrize(
    "hide",
    [
        # Files unlinked while held open are gone from the directory but still take the disk.
        """for (let i = 0; i < 3; i++) {
             const fd = fs.openSync('u' + i, 'w'); fs.unlinkSync('u' + i); fs.writeSync(fd, chunk); kept.push(fd);
           }""",
        # A path just short of PATH_MAX inside (/mnt/data + 16 x 251 + 61 characters) but longer on the
        # host, where the session directory's own path comes on top: a walk by host paths misses it.
        """let dir = '.';
           for (let i = 0; i < 16; i++) {
             dir += '/' + 'd'.repeat(250); fs.mkdirSync(dir); process.chdir(dir); dir = '.';
           }
           for (let i = 0; i < 3; i++) fs.writeFileSync('f'.repeat(60) + i, chunk);""",
    ],
    ids=["deleted-but-open", "path-beyond-path-max"],
)
def test_hidden_disk_use_ends_the_session(client: PoolClient, pool: LocalPool, hide: str) -> None:
    identifier = new_identifier("hide")
    # Three files of most of the limit each: together well over it, each one under it (RLIMIT_FSIZE).
    chunk_mb = SMALL_DISK_MB // 2
    body = client.run(identifier, _HOLD_THEN_WAIT % (chunk_mb, hide), timeoutInSeconds=20)
    assert body["status"] == STATUS_FAILED, body
    assert body["error"]["error"]["code"] == "SessionDiskLimitExceeded", body
    assert_still_serving(pool.endpoint)


@pytest.fixture(scope="module")
def python_pool() -> Iterator[LocalPool]:
    """A PythonLTS pool with the small disk limit: its session code may start processes."""
    options = {"max_sessions": 4, "limits": SandboxLimits(disk_mb=SMALL_DISK_MB), "container_type": "PythonLTS"}
    with _pool(**options) as local_pool:
        yield local_pool


def test_a_file_the_server_deletes_while_an_idle_process_holds_it_still_counts(python_pool: LocalPool) -> None:
    # A child that holds the file and then never runs again: the measurement skips processes whose
    # threads did not run, so the server's own delete (DELETE files/{name}) must make it look again.
    identifier = new_identifier("held")
    chunk = SMALL_DISK_MB * 1024 * 1024 * 6 // 10  # each file 60 % of the limit: two are over it
    hold = f"""
import subprocess, sys
with open('held.bin', 'wb') as f:
    f.write(b'x' * {chunk})
    f.flush()
    holder = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], stdout=f)
'started'
"""
    with PoolClient(python_pool.endpoint) as client:
        assert client.run(identifier, hold)["status"] == "Succeeded"
        # Once more, so the holder is inspected after it has settled into its sleep.
        assert client.run(identifier, "import time; time.sleep(0.5)")["status"] == "Succeeded"
        deleted = client.http.delete(
            f"{python_pool.endpoint}/files/held.bin",
            params={"api-version": API_2024_10, "identifier": identifier},
            timeout=30,
        )
        assert deleted.status_code == requests.codes.no_content, deleted.text
        body = client.run(identifier, f"open('more.bin', 'wb').write(b'y' * {chunk})")
    assert body["status"] == STATUS_FAILED, body
    assert body["error"]["error"]["code"] == "SessionDiskLimitExceeded", body


def test_the_private_tmp_is_small(client: PoolClient, pool: LocalPool) -> None:
    code = """
        try {
          for (let i = 0; i < 100; i++) require('fs').writeFileSync('/tmp/f' + i, Buffer.alloc(1 << 20));
          'wrote all'
        } catch (e) { e.code }
    """
    assert _result(client, code) in {"ENOSPC", "ERR_ACCESS_DENIED"}
    assert_still_serving(pool.endpoint)


# -- network ----------------------------------------------------------------------------------

_TCP_CONNECT = """
new Promise((resolve) => {
  const socket = require('net').connect(%s);
  socket.on('connect', () => { socket.end(); resolve('connected'); });
  socket.on('error', (e) => resolve(e.code));
  setTimeout(() => resolve('timeout'), 1000);
})
"""


def test_tcp_to_the_host_is_unreachable(client: PoolClient, pool: LocalPool, host_listener: socket.socket) -> None:
    port = host_listener.getsockname()[1]
    assert _result(client, _TCP_CONNECT % f"{port}, '127.0.0.1'") != "connected"
    assert no_connection(host_listener)
    assert_still_serving(pool.endpoint)


def test_udp_to_the_host_is_not_delivered(client: PoolClient, pool: LocalPool) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(NO_CONNECTION_SECONDS)
        port = receiver.getsockname()[1]
        code = f"""
            new Promise((resolve) => {{
              const s = require('dgram').createSocket('udp4');
              s.send('ping', {port}, '127.0.0.1', (e) => {{ s.close(); resolve(e ? e.code : 'sent'); }});
            }})
        """
        client.run(new_identifier("udp"), code)
        with pytest.raises(TimeoutError):
            receiver.recvfrom(64)
    assert_still_serving(pool.endpoint)


def test_host_unix_sockets_are_unreachable(client: PoolClient, pool: LocalPool) -> None:
    directory = Path(tempfile.mkdtemp(prefix="agent-"))
    directory.chmod(0o755)
    path = directory / "agent.sock"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(path))
            path.chmod(0o777)
            listener.listen(1)
            listener.settimeout(NO_CONNECTION_SECONDS)
            assert _result(client, _TCP_CONNECT % repr(str(path))) != "connected"
            assert no_connection(listener)
    finally:
        path.unlink(missing_ok=True)
        directory.rmdir()
    assert_still_serving(pool.endpoint)


def test_a_listening_port_in_a_session_is_not_reachable_from_the_host(client: PoolClient, pool: LocalPool) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = f"""
        new Promise((resolve) => {{
          const server = require('net').createServer((s) => s.end('pwned'));
          server.on('error', (e) => resolve(e.code));
          server.listen({port}, '127.0.0.1', () => resolve('listening'));
        }})
    """
    client.run(new_identifier("listen"), code)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=NO_CONNECTION_SECONDS):
        pass
    assert_still_serving(pool.endpoint)


def test_egress_disabled_has_only_loopback_and_no_route(client: PoolClient, pool: LocalPool) -> None:
    interfaces = _result(client, "Object.keys(require('os').networkInterfaces()).join(',')")
    assert interfaces == "lo"
    assert _result(client, _TCP_CONNECT % "53, '8.8.8.8'") in {"ENETUNREACH", "EHOSTUNREACH", "timeout"}
    assert_still_serving(pool.endpoint)


# -- time -------------------------------------------------------------------------------------


def test_a_busy_timer_and_big_code_cannot_hang_a_session(client: PoolClient, pool: LocalPool) -> None:
    identifier = new_identifier("hang")
    client.run(identifier, "setTimeout(() => { for (;;) {} }, 100); 'armed'")
    time.sleep(0.3)
    started = time.monotonic()
    big = "//" + "x" * BIG_CODE_BYTES + "\n1"
    body = client.run(identifier, big, timeoutInSeconds=HANG_TIMEOUT_SECONDS)
    assert time.monotonic() - started < HANG_TIMEOUT_SECONDS + 3
    assert body["status"] == STATUS_FAILED and body["error"]["error"]["code"] == "ExecutionTimeout"
    # The sandbox was killed; the identifier starts fresh and answers at once.
    assert _result(client, "typeof armed + ' fresh'", identifier) == "undefined fresh"
    assert_still_serving(pool.endpoint)


def test_hung_sessions_are_reaped_and_free_their_slots() -> None:
    with _pool(max_sessions=2, cooldown_seconds=1.0, prewarm=False) as small:
        client = PoolClient(small.endpoint)
        pids = []
        for _ in range(2):
            identifier = new_identifier("hung")
            client.run(identifier, "setTimeout(() => { for (;;) {} }, 50); 1")
            pids.append(host_facts(small, identifier)[0])
            client.run(identifier, "//" + "x" * BIG_CODE_BYTES, timeoutInSeconds=HANG_TIMEOUT_SECONDS)
        assert wait_until(lambda: not small.manager.live_sessions(), timeout=10)
        # SIGKILL is delivered at once but a killed process is gone only when it has been reaped.
        assert wait_until(lambda: not any(process_alive(pid) for pid in pids), timeout=5)
        assert_still_serving(small.endpoint)
        client.close()


# -- processes, signals, memory ---------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "require('child_process').execSync('id').toString()",
        "new (require('worker_threads').Worker)('1', { eval: true }); 'started'",
        "for (let i = 0; i < 1000; i++) require('child_process').spawn('sleep', ['60']); 'forked'",
    ],
)
def test_child_processes_and_fork_bombs_are_refused(client: PoolClient, pool: LocalPool, code: str) -> None:
    body = client.run(new_identifier("fork"), code)
    assert body["status"] == STATUS_FAILED
    assert_still_serving(pool.endpoint)


def test_signals_cannot_reach_the_server(client: PoolClient, pool: LocalPool) -> None:
    for signal_name in ("SIGTERM", "SIGKILL", "SIGUSR1"):
        code = f"try {{ process.kill({os.getpid()}, '{signal_name}'); 'sent' }} catch (e) {{ e.code }}"
        assert _result(client, code) in {"EPERM", "ESRCH"}
    assert _result(client, "try { process.kill(-1, 'SIGKILL'); 'sent' } catch (e) { e.code }") in {"EPERM", "ESRCH"}
    assert_still_serving(pool.endpoint)


def test_memory_outside_the_heap_is_bounded(client: PoolClient, pool: LocalPool) -> None:
    code = "const hoard = []; for (;;) hoard.push(Buffer.alloc(64 * 1024 * 1024, 1));"
    body = client.run(new_identifier("buffers"), code, timeoutInSeconds=30)
    assert body["status"] == STATUS_FAILED
    assert_still_serving(pool.endpoint)


def test_webassembly_works_in_a_session(client: PoolClient, pool: LocalPool) -> None:
    # (module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)) + a 64 MiB memory
    wasm = [0, 97, 115, 109, 1, 0, 0, 0, 1, 7, 1, 96, 2, 127, 127, 1, 127, 3, 2, 1, 0, 7, 7, 1, 3, 97, 100, 100, 0, 0]
    wasm += [10, 9, 1, 7, 0, 32, 0, 32, 1, 106, 11]
    code = (
        f"new WebAssembly.Memory({{ initial: 1024 }}); "
        f"WebAssembly.instantiate(new Uint8Array({wasm})).then((m) => m.instance.exports.add(2, 3))"
    )
    assert _result(client, code) == "5"
    assert_still_serving(pool.endpoint)


# -- what a session can learn -----------------------------------------------------------------


def test_the_host_identity_and_checkout_do_not_leak(client: PoolClient, pool: LocalPool) -> None:
    code = """
        const os = require('os');
        let user; try { user = os.userInfo().username } catch (e) { user = 'none' }
        JSON.stringify({ user, host: os.hostname(), argv: process.argv, cwd: process.cwd(), home: os.homedir(),
                         uid: process.getuid(), exec: process.execPath, file: __filename })
    """
    facts = _result(client, code)
    assert str(PROJECT_ROOT) not in facts
    assert socket.gethostname() not in facts
    assert f'"host":"{SANDBOX_HOSTNAME}"' in facts
    assert '"uid":65534' in facts
    assert f'"cwd":"{SESSION_MOUNT_POINT}"' in facts
    assert_still_serving(pool.endpoint)


# -- access -----------------------------------------------------------------------------------


def test_a_session_cannot_drive_the_pool_from_inside(client: PoolClient, pool: LocalPool) -> None:
    """No route to the pool's port without egress, and never the token (nothing in its environment)."""
    url = pool.endpoint + EXECUTIONS_PATH + f"?api-version={API_2024_10}&identifier=victim-0001"
    code = f"fetch({url!r}, {{ method: 'POST' }}).then((r) => String(r.status), (e) => 'unreachable')"
    assert _result(client, code) == "unreachable"
    assert "TOKEN" not in _result(client, "Object.keys(process.env).join(',')").upper()
    assert_still_serving(pool.endpoint)


# A namespace of our own standing in for "the internet" (issue: traffic only to namespaces we create).
_TEST_NETNS = f"lp-egress-{os.getpid()}"
_TEST_HOST_SIDE, _TEST_FAR_SIDE = "10.213.47.1", "10.213.47.2"


@pytest.fixture(scope="module")
def far_host() -> Iterator[str | None]:
    """A network namespace with a veth link from the host, at 10.213.47.2 (root only; None otherwise)."""
    if os.geteuid() != 0:
        yield None
        return
    link = f"lpe{os.getpid() % 100000}"
    steps = [
        ["ip", "netns", "add", _TEST_NETNS],
        ["ip", "link", "add", link, "type", "veth", "peer", "name", f"{link}n"],
        ["ip", "link", "set", f"{link}n", "netns", _TEST_NETNS],
        ["ip", "addr", "add", f"{_TEST_HOST_SIDE}/30", "dev", link],
        ["ip", "link", "set", link, "up"],
        ["ip", "netns", "exec", _TEST_NETNS, "ip", "addr", "add", f"{_TEST_FAR_SIDE}/30", "dev", f"{link}n"],
        ["ip", "netns", "exec", _TEST_NETNS, "ip", "link", "set", f"{link}n", "up"],
    ]
    try:
        for step in steps:
            done = subprocess.run(step, check=False, capture_output=True, text=True, timeout=10)
            assert done.returncode == 0, f"{' '.join(step)}: {done.stderr}"
        yield _TEST_FAR_SIDE
    finally:
        subprocess.run(["ip", "link", "del", link], check=False, capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", _TEST_NETNS], check=False, capture_output=True, timeout=10)


def test_with_egress_a_session_reaches_out_but_not_the_host(far_host: str | None, egress_pool: LocalPool) -> None:
    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    abstract_name = f"\0localpool-probe-{os.getpid()}"
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind(abstract_name)
    abstract.listen(1)
    abstract.settimeout(NO_CONNECTION_SECONDS)
    try:
        with PoolClient(egress_pool.endpoint) as client:
            # The host's loopback services, the pool itself and the host's abstract Unix sockets (X11's
            # @/tmp/.X11-unix/X0 on a desktop) are not in the sandbox's network namespace.
            fetched = (
                f"fetch('http://127.0.0.1:{server.server_address[1]}/').then((r) => r.text(), (e) => 'unreachable')"
            )
            assert _result(client, fetched) == "unreachable"
            assert _result(client, _TCP_CONNECT % repr(abstract_name)) != "connected"
            assert no_connection(abstract)
            # Outbound: slirp4netns's tap device (10.0.2.100, the default route goes through it); with root,
            # a real connection to a namespace of our own.
            interfaces = (
                "JSON.stringify(require('os').networkInterfaces().tap0"
                ".filter((a) => a.family === 'IPv4').map((a) => a.address))"
            )
            assert _result(client, interfaces) == '["10.0.2.100"]'
            if far_host is not None:
                with _far_listener(far_host) as port:
                    assert _result(client, _TCP_CONNECT % f"{port}, {far_host!r}") == "connected"
    finally:
        abstract.close()
        server.shutdown()
        server.server_close()
    assert_still_serving(egress_pool.endpoint)


@contextlib.contextmanager
def _far_listener(address: str) -> Iterator[int]:
    """A TCP listener inside the test namespace (accepts one connection); yields its port."""
    script = (
        "import socket, sys; s = socket.socket(); s.bind((sys.argv[1], 0)); s.listen(1); "
        "print(s.getsockname()[1], flush=True); s.settimeout(10); s.accept()"
    )
    command = ["ip", "netns", "exec", _TEST_NETNS, sys.executable, "-c", script, address]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as listener:
        assert listener.stdout is not None and listener.stderr is not None
        try:
            line = listener.stdout.readline()
            assert line, listener.stderr.read()
            yield int(line)
        finally:
            listener.kill()


def test_with_egress_a_port_listening_in_a_session_is_not_reachable_from_the_host(egress_pool: LocalPool) -> None:
    identifier = new_identifier("listen")
    code = """
        globalThis.accepted = 0;
        globalThis.server = require('net').createServer((c) => { accepted++; c.destroy(); });
        new Promise((resolve) => server.listen(0, '0.0.0.0', () => resolve(server.address().port)))
    """
    with PoolClient(egress_pool.endpoint) as client:
        port = int(_result(client, code, identifier))
        for address in ("127.0.0.1", "0.0.0.0"):
            with socket.socket() as probe:
                probe.settimeout(NO_CONNECTION_SECONDS)
                with contextlib.suppress(OSError):
                    probe.connect((address, port))
        time.sleep(NO_CONNECTION_SECONDS)
        assert _result(client, "accepted", identifier) == "0"
    assert_still_serving(egress_pool.endpoint)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "192.168.1.5"])
def test_dns_rebinding_hosts_are_refused(pool: LocalPool, host: str) -> None:
    head = (
        f"POST {pool.endpoint.split(str(pool.port), 1)[1]}{EXECUTIONS_PATH}?api-version={API_2024_10}"
        f"&identifier=rebind-0001 HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\nContent-Length: 11\r\nConnection: close"
    )
    reply = raw_request(pool.host, pool.port, head, b'{"code":"1"}'[:11])
    assert reply.status == requests.codes.forbidden
    assert reply.body["error"]["code"] == "HostNotAllowed"
    assert_still_serving(pool.endpoint)


# -- load -------------------------------------------------------------------------------------


def test_deeply_nested_json_is_400(pool: LocalPool) -> None:
    depth = 100_000
    body = b'{"code": ' + b"[" * depth + b"]" * depth + b"}"
    reply = requests.post(
        pool.endpoint + EXECUTIONS_PATH,
        params={"api-version": API_2024_10, "identifier": new_identifier()},
        data=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert reply.status_code == requests.codes.bad_request
    assert reply.json()["error"]["code"] == "InvalidRequestBody"
    assert_still_serving(pool.endpoint)


# An execution that holds its session until the file "go" appears in /mnt/data: nothing queued behind it
# finishes (and frees a place) while the test is still sending, however slow the machine.
_GATE = """
new Promise((resolve) => {
  const poll = setInterval(() => {
    if (require('fs').existsSync('go')) { clearInterval(poll); resolve('released'); }
  }, 10);
})
"""


def test_queued_executions_per_session_are_capped_with_429(client: PoolClient, pool: LocalPool) -> None:
    identifier = new_identifier("queue")
    client.run(identifier, "1")
    gate = client.execute(identifier, _GATE, executionType="Asynchronous", timeoutInSeconds=MAX_EXECUTION_SECONDS)
    try:
        replies = [gate] + [
            client.execute(identifier, "1", executionType="Asynchronous")
            for _ in range(MAX_QUEUED_EXECUTIONS_PER_SESSION + 2)
        ]
    finally:
        (host_facts(pool, identifier)[1] / "go").touch()
    statuses = [reply.status_code for reply in replies]
    assert statuses.count(requests.codes.ok) == MAX_QUEUED_EXECUTIONS_PER_SESSION
    refused = [reply for reply in replies if reply.status_code == requests.codes.too_many_requests]
    assert len(refused) == 3
    assert all(reply.headers["Retry-After"].isdigit() for reply in refused)
    assert refused[0].json()["error"]["code"] == "TooManyRequests"
    assert_still_serving(pool.endpoint)


def test_queued_executions_per_pool_are_capped_with_429() -> None:
    sessions = MAX_QUEUED_EXECUTIONS_PER_POOL // MAX_QUEUED_EXECUTIONS_PER_SESSION + 1
    with _pool(max_sessions=sessions + 1, prewarm=False) as small, PoolClient(small.endpoint) as client:
        statuses = [
            client.execute(
                f"cap-{index % sessions:04d}",
                f"new Promise((r) => setTimeout(r, {MAX_EXECUTION_SECONDS * 1000}))",
                executionType="Asynchronous",
                timeoutInSeconds=MAX_EXECUTION_SECONDS,
            ).status_code
            for index in range(MAX_QUEUED_EXECUTIONS_PER_POOL + 5)
        ]
        assert statuses.count(requests.codes.ok) == MAX_QUEUED_EXECUTIONS_PER_POOL
        assert statuses[-5:] == [requests.codes.too_many_requests] * 5
        # The last session has room of its own, but the pool as a whole has none.
        refused = client.execute(f"cap-{sessions:04d}", "1")
        assert refused.status_code == requests.codes.too_many_requests
        assert "unfinished executions" in refused.json()["error"]["message"]


def test_two_hundred_concurrent_clients_are_all_answered(pool: LocalPool) -> None:
    identifiers = [new_identifier("load") for _ in range(10)]

    def one(index: int) -> int:
        with requests.Session() as http:
            reply = http.post(
                pool.endpoint + EXECUTIONS_PATH,
                params={"api-version": API_2024_10, "identifier": identifiers[index % len(identifiers)]},
                json={"code": "1 + 1"},
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=60,
            )
            return reply.status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENT_CLIENTS) as executor:
        statuses = list(executor.map(one, range(CONCURRENT_CLIENTS)))
    assert statuses == [requests.codes.ok] * CONCURRENT_CLIENTS
    assert_still_serving(pool.endpoint)


def test_sessions_start_with_tmpdir_behind_a_symlink() -> None:
    real = Path(tempfile.mkdtemp())
    real.chmod(0o755)
    link = Path(tempfile.mkdtemp()) / "link"
    link.parent.chmod(0o755)
    link.symlink_to(real)
    previous = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(link)
    tempfile.tempdir = None
    try:
        with _pool(prewarm=False) as linked:
            assert_still_serving(linked.endpoint)
    finally:
        if previous is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = previous
        tempfile.tempdir = None
        link.unlink()
        link.parent.rmdir()
        real.rmdir()
