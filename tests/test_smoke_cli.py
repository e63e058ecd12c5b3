"""``python -m smoke`` as a real subprocess against real scripted servers: exit codes, waiting, output."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from smoke.protocol import API_2024_10, HELLO_WORLD_CODE
from tests.support.scripted_pool import (
    REGIONAL_BASE_PATH,
    Reply,
    Request,
    ScriptedPool,
    execution_body,
    files_pool,
    for_window,
    free_port,
    hello_pool,
    sequence,
)
from tests.support.smoke_cli import run_smoke_cli, start_smoke_cli

TOKEN = "smk-FAKE-TOKEN-8d2b4c6e-never-print-me"
ONLY_2024_10 = ("--api-version", API_2024_10)
# Slack for interpreter start-up and teardown on a busy CI machine, on top of --timeout.
PROCESS_SLACK_SECONDS = 2.0
RESULT_KEYS = {
    "apiVersion",
    "ok",
    "httpStatus",
    "status",
    "stdout",
    "stderr",
    "attempts",
    "latencyMs",
    "executionTimeInMilliseconds",
}


def run_cli(
    *args: str, token: str | None = TOKEN, extra_env: dict[str, str] | None = None, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m smoke`` with this module's fake token unless told otherwise."""
    return run_smoke_cli(*args, token=token, extra_env=extra_env, path=path)


def progress_lines(completed: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in completed.stderr.splitlines() if line.startswith("smoke: ")]


def assert_no_token(completed: subprocess.CompletedProcess[str]) -> None:
    assert TOKEN not in completed.stdout
    assert TOKEN not in completed.stderr
    assert "Traceback" not in completed.stderr


def test_passes_on_both_generations_with_one_summary_line() -> None:
    with ScriptedPool(hello_pool(), REGIONAL_BASE_PATH) as pool:
        completed = run_cli("--endpoint", pool.endpoint + "/")
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"PASS hello-world ran on {pool.endpoint} (2024-02-02-preview: ")
    assert "2024-10-02-preview: " in lines[0] and lines[0].endswith(" ms)")
    assert completed.stderr == ""
    assert [request.path for request in pool.requests] == [
        REGIONAL_BASE_PATH + "/code/execute",
        REGIONAL_BASE_PATH + "/executions",
    ]
    assert len({request.query["identifier"] for request in pool.requests}) == 1
    assert pool.requests[0].authorization == f"Bearer {TOKEN}"


def test_json_output_schema() -> None:
    with ScriptedPool(hello_pool(identifier="json-ident")) as pool:
        completed = run_cli("--endpoint", pool.endpoint, "--json", "--identifier", "json-ident")
    assert completed.returncode == 0, completed.stderr
    verdict = json.loads(completed.stdout)  # exactly one JSON document
    assert verdict["ok"] is True and verdict["endpoint"] == pool.endpoint and verdict["exitCode"] == 0
    assert verdict["identifier"] == "json-ident"
    assert [result["apiVersion"] for result in verdict["results"]] == ["2024-02-02-preview", "2024-10-02-preview"]
    for result in verdict["results"]:
        assert set(result) >= RESULT_KEYS
        assert result["ok"] is True and "error" not in result
        assert result["stdout"] == "hello-world\n" and result["stderr"] == ""
        assert result["attempts"] == 1 and isinstance(result["latencyMs"], int)
        assert isinstance(result["executionTimeInMilliseconds"], int)
    assert [result["httpStatus"] for result in verdict["results"]] == [200, 202]
    assert [result["status"] for result in verdict["results"]] == ["Success", "Succeeded"]


def test_files_flag_adds_the_file_round_trip() -> None:
    store: dict[str, bytes] = {}
    with ScriptedPool(files_pool(store)) as pool:
        completed = run_cli("--endpoint", pool.endpoint, *ONLY_2024_10, "--files", "--json")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = json.loads(completed.stdout)["results"]
    assert [(result["check"], result["apiVersion"], result["ok"]) for result in results] == [
        ("hello-world", API_2024_10, True),
        ("files", API_2024_10, True),
    ]
    assert [request.method for request in pool.requests] == ["POST", "POST", "GET", "GET", "DELETE"]
    assert store == {}
    assert_no_token(completed)


def test_waits_out_401_and_403_then_passes() -> None:
    after_401 = for_window(1.0, Reply(403, {"error": {"code": "Forbidden", "message": "no role"}}), hello_pool())
    with ScriptedPool(for_window(0.8, Reply(401), after_401)) as pool:
        completed = run_cli("--endpoint", pool.endpoint, "--json", *ONLY_2024_10, "--timeout", "20")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    result = json.loads(completed.stdout)["results"][0]
    assert result["attempts"] > 1 and result["attempts"] == len(pool.requests)
    lines = progress_lines(completed)
    assert len(lines) == result["attempts"] - 1  # one line per wait
    assert "attempt 1: HTTP 401" in lines[0]
    assert any("HTTP 403 (role assignment not propagated yet?)" in line for line in lines)
    assert all("next try in" in line for line in lines)
    assert_no_token(completed)


def test_still_403_at_the_deadline_exits_3() -> None:
    with ScriptedPool(sequence(Reply(403))) as pool:
        completed = run_cli("--endpoint", pool.endpoint, *ONLY_2024_10, "--timeout", "2")
        # From the first request, so that how long Python takes to start on a busy machine does not count.
        elapsed = time.monotonic() - pool.requests[0].arrived
    assert completed.returncode == 3, completed.stdout + completed.stderr
    assert completed.stdout.startswith("FAIL ") and "HTTP 403" in completed.stdout
    assert "Azure ContainerApps Session Executor" in completed.stdout
    assert len(pool.requests) >= 2
    assert pool.requests[-1].arrived - pool.requests[0].arrived < 2
    assert elapsed < 2 + PROCESS_SLACK_SECONDS
    assert_no_token(completed)


def test_429_retry_after_is_honoured() -> None:
    with ScriptedPool(sequence(Reply(429, None, {"Retry-After": "2"}), Reply(202, execution_body()))) as pool:
        completed = run_cli("--endpoint", pool.endpoint, *ONLY_2024_10, "--timeout", "20")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    first, second = pool.requests
    gap = second.arrived - first.arrived
    assert 2.0 <= gap < 3.0, gap  # the backoff alone would have retried after ~1 s
    assert "HTTP 429 (rate limited; Retry-After 2.0 s); next try in 2.0 s" in completed.stderr


def test_500_then_success() -> None:
    with ScriptedPool(
        sequence(Reply(500, {"error": {"code": "Internal", "message": "oops"}}), Reply(202, execution_body()))
    ) as pool:
        completed = run_cli("--endpoint", pool.endpoint, *ONLY_2024_10, "--json")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert json.loads(completed.stdout)["results"][0]["attempts"] == 2
    assert "HTTP 500 (server error: Internal: oops)" in completed.stderr


def test_connection_refused_exits_4_at_the_deadline() -> None:
    # In this process: how long starting Python takes on a busy machine is not what is measured.
    endpoint = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    code, out, err = _main_in_process("--endpoint", endpoint, *ONLY_2024_10, "--timeout", "1.5")
    elapsed = time.monotonic() - started
    assert code == 4, out + err
    assert "Connection refused" in out and "deadline" in out
    assert any(line.startswith("smoke: ") for line in err.splitlines())
    assert elapsed < 1.5 + PROCESS_SLACK_SECONDS
    assert TOKEN not in out + err and "Traceback" not in err


def test_slow_answer_past_the_read_timeout_is_retried() -> None:
    replies = sequence(Reply(202, execution_body(), delay=1.5), Reply(202, execution_body()))
    with ScriptedPool(replies) as pool:
        completed = run_cli("--endpoint", pool.endpoint, *ONLY_2024_10, "--request-timeout", "0.5", "--json")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert len(pool.requests) == 2
    assert json.loads(completed.stdout)["results"][0]["attempts"] == 2
    assert "no answer within 0.5 s (reading the answer timed out)" in completed.stderr


@pytest.mark.parametrize("drip", [0.0, 0.001], ids=["one-chunk", "a-chunk-per-byte"])
def test_chunked_answers_are_read_in_full(drip: float) -> None:
    with ScriptedPool(sequence(Reply(202, execution_body(), chunked=True, drip=drip))) as pool:
        completed = run_cli("--endpoint", pool.endpoint, *ONLY_2024_10, "--json")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert json.loads(completed.stdout)["results"][0]["stdout"] == "hello-world\n"


def test_gzip_encoded_answer_is_decoded() -> None:
    data = gzip.compress(json.dumps(execution_body()).encode())
    reply = Reply(202, data, {"Content-Encoding": "gzip"}, content_type="application/json", chunked=True)
    with ScriptedPool(sequence(reply)) as pool:
        completed = run_cli("--endpoint", pool.endpoint, *ONLY_2024_10)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_malformed_json_exits_1_without_retrying() -> None:
    with ScriptedPool(sequence(Reply(202, '{"status": "Succ'))) as pool:
        completed = run_cli("--endpoint", pool.endpoint, *ONLY_2024_10)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "not valid JSON" in completed.stdout and len(pool.requests) == 1
    assert_no_token(completed)


HTML_PAGE = "<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>"


def test_html_error_page_with_5xx_is_retried_then_exits_4() -> None:
    with ScriptedPool(sequence(Reply(502, HTML_PAGE, content_type="text/html"))) as pool:
        completed = run_cli("--endpoint", pool.endpoint, *ONLY_2024_10, "--timeout", "1")
    assert completed.returncode == 4, completed.stdout + completed.stderr
    assert "HTTP 502 (server error: HTML page '502 Bad Gateway')" in completed.stdout
    assert len(pool.requests) >= 2
    assert_no_token(completed)


def test_html_page_with_200_exits_1() -> None:
    with ScriptedPool(sequence(Reply(200, HTML_PAGE, content_type="text/html"))) as pool:
        completed = run_cli("--endpoint", pool.endpoint, *ONLY_2024_10)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "HTML page '502 Bad Gateway'" in completed.stdout


def test_wrong_stdout_exits_1() -> None:
    with ScriptedPool(sequence(Reply(202, execution_body(stdout="hello world\n")))) as pool:
        completed = run_cli("--endpoint", pool.endpoint, *ONLY_2024_10)
    assert completed.returncode == 1
    assert "printed 'hello world\\n', expected 'hello-world\\n'" in completed.stdout


def test_failed_status_exits_1_and_shows_stderr() -> None:
    body = execution_body("Failed", stdout="", stderr="ReferenceError: consol is not defined")
    with ScriptedPool(sequence(Reply(202, body))) as pool:
        completed = run_cli("--endpoint", pool.endpoint, *ONLY_2024_10, "--json")
    assert completed.returncode == 1
    result = json.loads(completed.stdout)["results"][0]
    assert result["ok"] is False and result["status"] == "Failed"
    assert result["stderr"] == "ReferenceError: consol is not defined"
    assert "ReferenceError" in result["error"]


def _echo_everywhere(request: Request) -> Reply:
    """A hostile pool that echoes the Authorization header back in every field it can."""
    secret = request.authorization or ""
    if request.path.endswith("/code/execute"):
        return Reply(200, {"properties": {"status": "Failure", "stdout": secret, "stderr": secret, "result": secret}})
    return Reply(502, f"<html><head><title>{secret}</title></head></html>", content_type="text/html")


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_token_never_appears_in_any_output(json_flag: list[str]) -> None:
    with ScriptedPool(_echo_everywhere) as pool:
        completed = run_cli("--endpoint", pool.endpoint, "--timeout", "1", *json_flag, token=f"  Bearer {TOKEN}\n")
    assert pool.requests[0].authorization == f"Bearer {TOKEN}"  # sent, normalised
    assert completed.returncode == 4  # the 502s win over the failed execution
    assert "[REDACTED]" in completed.stdout
    assert_no_token(completed)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "No pool endpoint given"),
        (("--endpoint", "http://pool.example.com"), "plain http"),
        (("--endpoint", "not-a-url"), "not an absolute https"),
        (("--endpoint", "https://exa mple.com"), "contains whitespace or control characters"),
        (("--endpoint", "https://x.example.com:0"), "has port 0, outside 1-65535"),
        (("--endpoint", "https://x.example.com:65536"), "not a valid URL"),
        (("--endpoint", "https://bad!host.example.com"), "not a valid DNS name or IP address"),
        (("--endpoint", "https://127.0.0.1:1", "--timeout", "0.4"), "must be at least 0.5 seconds"),
        (("--endpoint", "https://127.0.0.1:1", "--identifier", "a b"), "is not valid: it must be 4-128"),
        (("--endpoint", "https://127.0.0.1:1", "--identifier", "abc"), "4-128 characters"),
        (("--endpoint", "https://127.0.0.1:1", "--bogus"), "unrecognized arguments: --bogus"),
        (("--endpoint", "https://127.0.0.1:1", "--timeout", "-1"), "positive number of seconds"),
        (("--endpoint", "https://127.0.0.1:1", "--api-version", "2023-01-01"), "invalid choice"),
        (("--endpoint", "https://127.0.0.1:1", "--stack", "dev"), "not allowed with argument"),
    ],
)
def test_usage_errors_exit_2_with_a_sentence(args: tuple[str, ...], message: str) -> None:
    completed = run_cli(*args)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""


def test_usage_error_with_json_still_prints_one_object() -> None:
    completed = run_cli("--json", "--endpoint", "ftp://pool.example.com")
    assert completed.returncode == 2
    verdict = json.loads(completed.stdout)
    assert verdict["ok"] is False and verdict["exitCode"] == 2 and verdict["results"] == []
    assert "not an absolute https" in verdict["error"]


def test_endpoint_from_environment_variable() -> None:
    with ScriptedPool(hello_pool()) as pool:
        completed = run_cli(*ONLY_2024_10, extra_env={"POOL_MANAGEMENT_ENDPOINT": pool.endpoint})
    assert completed.returncode == 0, completed.stderr
    assert len(pool.requests) == 1


def test_no_credential_exits_2_and_says_how_to_sign_in(tmp_path: Path) -> None:
    completed = run_cli(
        "--endpoint",
        "https://pool.example.com",
        token=None,
        path=str(tmp_path),  # no `az` to fall back on
        extra_env={"HOME": str(tmp_path), "AZURE_TOKEN_CREDENTIALS": "AzureCliCredential"},
    )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "az login" in completed.stderr and "DYNAMIC_SESSIONS_TOKEN" in completed.stderr
    assert "Traceback" not in completed.stderr


def _fake_pulumi(directory: Path, outputs: dict[str, str] | None, exit_code: int = 0) -> Path:
    """A ``pulumi`` executable that records its arguments and prints ``outputs`` as JSON."""
    argv_file = directory / "pulumi-argv.txt"
    printed = json.dumps(outputs) if outputs is not None else ""
    script = directory / "pulumi"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            printf '%s\\n' "$@" > '{argv_file}'
            if [ {exit_code} -ne 0 ]; then echo 'error: no stack named dev found' >&2; exit {exit_code}; fi
            cat <<'EOF'
            {printed}
            EOF
            """
        )
    )
    script.chmod(0o755)
    return argv_file


def test_stack_outputs_come_from_the_pulumi_cli(tmp_path: Path) -> None:
    with ScriptedPool(hello_pool(), REGIONAL_BASE_PATH) as pool:
        argv_file = _fake_pulumi(tmp_path, {"poolManagementEndpoint": pool.endpoint, "containerType": "PythonLTS"})
        completed = run_cli("--stack", "dev", "--json", path=f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert argv_file.read_text().split() == ["stack", "output", "--json", "--stack", "dev"]
    verdict = json.loads(completed.stdout)
    assert verdict["endpoint"] == pool.endpoint and verdict["containerType"] == "PythonLTS"
    assert pool.requests[1].json()["code"] == HELLO_WORLD_CODE["PythonLTS"]


@pytest.mark.parametrize(
    ("outputs", "exit_code", "message"),
    [
        (
            {"resourceGroupName": "rg"},
            0,
            "has no usable output 'poolManagementEndpoint' (outputs present: resourceGroupName)",
        ),
        (None, 3, "failed with exit code 3: error: no stack named dev found"),
        ({"poolManagementEndpoint": "https://p.example.io", "containerType": "CustomContainer"}, 0, "--container-type"),
    ],
)
def test_stack_problems_exit_2(tmp_path: Path, outputs: dict[str, str] | None, exit_code: int, message: str) -> None:
    _fake_pulumi(tmp_path, outputs, exit_code)
    completed = run_cli("--stack", "dev", path=f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert message in completed.stderr


def test_stack_without_the_pulumi_cli_exits_2(tmp_path: Path) -> None:
    completed = run_cli("--stack", "dev", path=str(tmp_path))
    assert completed.returncode == 2
    assert "needs the Pulumi CLI, but `pulumi` is not on PATH" in completed.stderr


def _main_in_process(*args: str, token: str = TOKEN) -> tuple[int, str, str]:
    """``smoke.cli.main`` in this process (quicker than a subprocess), output on strict UTF-8 streams like a pipe's."""
    from smoke.cli import main

    streams = [io.TextIOWrapper(io.BytesIO(), encoding="utf-8") for _ in range(2)]
    code = main(list(args), env={"DYNAMIC_SESSIONS_TOKEN": token}, stdout=streams[0], stderr=streams[1])
    out, err = (stream.buffer.getvalue().decode("utf-8") for stream in streams)
    return code, out, err


# --- configuration problems: exit 2 at once, secrets never echoed ---------------------------------


@pytest.mark.parametrize(
    ("endpoint", "secret"),
    [
        ("https://smoke-user:s3cret-pass@pool.example.com", "s3cret-pass"),
        ("https://smoke-user:s3cret-pass@[::1", "s3cret-pass"),
        ("https://pool.example.com/?sig=s3cret-sig", "s3cret-sig"),
        ("https://pool.example.com:0/#key=s3cret-key", "s3cret-key"),
    ],
)
def test_secrets_in_a_rejected_endpoint_are_never_echoed(endpoint: str, secret: str) -> None:
    for json_flag in ([], ["--json"]):
        code, out, err = _main_in_process("--endpoint", endpoint, *json_flag)
        assert code == 2, out + err
        assert "The pool management endpoint" in err and secret not in out + err
        if json_flag:
            assert json.loads(out)["endpoint"] is None


@pytest.mark.parametrize("token", ["Bearer ", "bearer", "  Bearer\t\n"])
def test_bearer_without_a_token_is_a_configuration_error(token: str) -> None:
    with ScriptedPool(hello_pool()) as pool:
        code, out, err = _main_in_process("--endpoint", pool.endpoint, token=token)
    assert code == 2, out + err
    assert "DYNAMIC_SESSIONS_TOKEN is set but holds no token" in err and "az account get-access-token" in err
    assert pool.requests == []


def test_a_request_requests_cannot_build_is_a_configuration_error_not_retried() -> None:
    # An unparseable proxy URL makes requests raise InvalidURL before anything is sent.
    started = time.monotonic()
    completed = run_cli(
        "--endpoint",
        f"http://127.0.0.1:{free_port()}",
        "--timeout",
        "20",
        extra_env={"HTTP_PROXY": "http://[::1", "NO_PROXY": "", "no_proxy": ""},
    )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "could not be sent (InvalidURL" in completed.stdout
    assert progress_lines(completed) == []  # not retried
    assert time.monotonic() - started < 20 / 2
    assert_no_token(completed)


# --- Ctrl-C -------------------------------------------------------------------------------------

INTERRUPT_WAIT_SECONDS = 10.0
INTERRUPT_POLL_SECONDS = 0.02


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_ctrl_c_ends_with_one_verdict_and_exit_130(json_flag: list[str]) -> None:
    # The pool holds every answer longer than the test waits, so the CLI is mid-request at SIGINT.
    with ScriptedPool(sequence(Reply(202, execution_body(), delay=INTERRUPT_WAIT_SECONDS))) as pool:
        process = start_smoke_cli("--endpoint", pool.endpoint, *ONLY_2024_10, *json_flag, token=TOKEN)
        try:
            waited_until = time.monotonic() + INTERRUPT_WAIT_SECONDS
            while not pool.requests and time.monotonic() < waited_until:
                time.sleep(INTERRUPT_POLL_SECONDS)
            assert pool.requests, "the CLI sent no request"
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=INTERRUPT_WAIT_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    if json_flag:
        verdict = json.loads(stdout)  # exactly one JSON object
        assert verdict["ok"] is False and verdict["exitCode"] == 130 and verdict["endpoint"] == pool.endpoint
        assert "interrupted" in verdict["error"]
    else:
        assert stdout.splitlines() == [
            f"FAIL hello-world check interrupted (Ctrl-C) before a verdict on {pool.endpoint} (exit 130)"
        ]
