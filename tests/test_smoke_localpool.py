"""The smoke CLI end to end against the offline stand-in of the pool (localpool), over real HTTP."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from localpool import LocalPool
from localpool.process import RunningPool, local_pool_process
from tests.support.smoke_cli import run_smoke_cli

POOL_TOKEN = "smk-LOCALPOOL-TOKEN-5a1e9d3b-never-print-me"
WRONG_TOKEN = "smk-WRONG-TOKEN-0c7f2e94-never-print-me"
POOL_START_TIMEOUT_SECONDS = 20


@pytest.fixture(scope="module")
def pool() -> Iterator[LocalPool]:
    """One LocalPool for the module, requiring POOL_TOKEN (Node.js missing fails, never skips)."""
    with LocalPool(token=POOL_TOKEN) as local:
        yield local


def test_both_generations_pass_end_to_end(pool: LocalPool) -> None:
    completed = run_smoke_cli("--endpoint", pool.endpoint, "--json", token=POOL_TOKEN)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    verdict = json.loads(completed.stdout)
    assert verdict["ok"] is True and verdict["endpoint"] == pool.endpoint
    assert [result["apiVersion"] for result in verdict["results"]] == ["2024-02-02-preview", "2024-10-02-preview"]
    for result in verdict["results"]:
        assert result["ok"] is True and result["stdout"] == "hello-world\n" and result["attempts"] == 1
    assert POOL_TOKEN not in completed.stdout + completed.stderr


def test_same_identifier_twice_reuses_the_session(pool: LocalPool) -> None:
    for _ in range(2):
        completed = run_smoke_cli("--endpoint", pool.endpoint, "--identifier", "smoke-reused-1", token=POOL_TOKEN)
        assert completed.returncode == 0, completed.stdout + completed.stderr
        assert completed.stdout.startswith("PASS hello-world ran on ")


def test_wrong_token_exits_3_at_the_deadline(pool: LocalPool) -> None:
    completed = run_smoke_cli("--endpoint", pool.endpoint, "--timeout", "1.5", "--json", token=WRONG_TOKEN)
    assert completed.returncode == 3, completed.stdout + completed.stderr
    verdict = json.loads(completed.stdout)
    assert verdict["ok"] is False and verdict["exitCode"] == 3
    assert verdict["results"][0]["outcome"] == "unauthorized"
    assert verdict["results"][0]["httpStatus"] in (401, 403)
    assert WRONG_TOKEN not in completed.stdout + completed.stderr


def test_against_python_m_localpool() -> None:
    """The documented flow: start ``python -m localpool``, read its endpoint line, smoke it."""
    env = {**os.environ, "LOCALPOOL_TOKEN": POOL_TOKEN}
    with local_pool_process("--quiet", env=env, start_timeout=POOL_START_TIMEOUT_SECONDS) as running:
        endpoint = running.endpoint
        completed = run_smoke_cli("--endpoint", endpoint, "--api-version", "2024-10-02-preview", token=POOL_TOKEN)
        assert completed.returncode == 0, completed.stdout + completed.stderr
        assert completed.stdout.startswith(f"PASS hello-world ran on {endpoint} (2024-10-02-preview: ")


def test_a_short_wrong_token_leaves_the_checks_own_words_alone(pool: LocalPool) -> None:
    """A token like `wrong` is scrubbed from what the pool says, never from the check's own hints."""
    completed = run_smoke_cli("--endpoint", pool.endpoint, "--timeout", "1.5", token="wrong")
    assert completed.returncode == 3, completed.stdout + completed.stderr
    output = completed.stdout + completed.stderr
    for line in output.splitlines():
        # Every waiting line and the verdict: our hint intact, the pool's sentence scrubbed of the token.
        assert "role assignment not propagated, or wrong token audience?" in line, line
        assert "A wrong token or identity is answered the same way" in line, line
        assert 'the pool says "InvalidToken: The bearer token is [REDACTED]' in line, line


@pytest.mark.parametrize("container_type", ["NodeLTS", "PythonLTS", "Shell"])
def test_every_container_type_passes_with_the_file_round_trip(container_type: str) -> None:
    """As the README says: `python -m localpool --container-type T`, then the smoke check with --files."""
    env = {**os.environ, "LOCALPOOL_TOKEN": POOL_TOKEN}
    args = ("--quiet", "--container-type", container_type)
    with local_pool_process(*args, env=env, start_timeout=POOL_START_TIMEOUT_SECONDS) as running:
        completed = run_smoke_cli(
            "--endpoint", running.endpoint, "--container-type", container_type, "--files", "--json", token=POOL_TOKEN
        )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    verdict = json.loads(completed.stdout)
    assert verdict["containerType"] == container_type
    checks = [(result["apiVersion"], result.get("check"), result["ok"]) for result in verdict["results"]]
    assert checks == [
        ("2024-02-02-preview", "hello-world", True),
        ("2024-10-02-preview", "hello-world", True),
        ("2024-10-02-preview", "files", True),
    ]


@pytest.fixture(scope="module")
def tls_pool() -> Iterator[RunningPool]:
    """`python -m localpool --tls` for the module: an HTTPS pool with its own self-signed certificate."""
    env = {**os.environ, "LOCALPOOL_TOKEN": POOL_TOKEN}
    with local_pool_process("--quiet", "--tls", env=env, start_timeout=POOL_START_TIMEOUT_SECONDS) as running:
        assert running.endpoint.startswith("https://") and running.cert_path is not None
        yield running


def _system_ca_bundle() -> dict[str, str]:
    """Every CA variable pointed at the system bundle, as images often set REQUESTS_CA_BUNDLE."""
    return {name: requests.certs.where() for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")}


def test_https_pool_is_trusted_through_the_printed_ssl_cert_file(tls_pool: RunningPool) -> None:
    """--tls prints SSL_CERT_FILE=...; the smoke check trusts it even where the image sets
    REQUESTS_CA_BUNDLE to the system bundle (requests would otherwise read only that)."""
    trusted = run_smoke_cli(
        "--endpoint", tls_pool.endpoint, "--files", token=POOL_TOKEN,
        extra_env={**_system_ca_bundle(), "SSL_CERT_FILE": str(tls_pool.cert_path)},
    )  # fmt: skip
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert trusted.stdout.startswith(f"PASS hello-world ran on {tls_pool.endpoint} ")


def test_an_untrusted_certificate_stops_at_once_with_exit_2(tls_pool: RunningPool) -> None:
    """A certificate that fails verification is configuration, not propagation: no waiting for the deadline."""
    started = time.monotonic()
    completed = run_smoke_cli(
        "--endpoint", tls_pool.endpoint, "--timeout", "30", "--json", token=POOL_TOKEN, extra_env=_system_ca_bundle()
    )
    elapsed = time.monotonic() - started
    assert completed.returncode == 2, completed.stdout + completed.stderr
    verdict = json.loads(completed.stdout)
    assert verdict["exitCode"] == 2 and verdict["results"], verdict
    origin = "https://" + urlsplit(tls_pool.endpoint).netloc
    for result in verdict["results"]:
        assert result["outcome"] == "configuration" and result["attempts"] == 1, result
        assert result["error"] == (
            f"The TLS certificate of {origin} is not trusted (self-signed certificate); for a local pool started "
            "with --tls, set SSL_CERT_FILE to the certificate path it printed, otherwise check the endpoint URL and "
            "the CA bundle named by SSL_CERT_FILE or REQUESTS_CA_BUNDLE."
        ), result
    assert "attempt" not in completed.stderr, completed.stderr  # no "attempt N: ...; next try in" waiting lines
    assert elapsed < 15, f"took {elapsed:.1f} s of the 30 s deadline"


def test_a_missing_ssl_cert_file_is_a_usage_error(pool: LocalPool) -> None:
    completed = run_smoke_cli(
        "--endpoint", pool.endpoint, token=POOL_TOKEN, extra_env={"SSL_CERT_FILE": "/nonexistent/cert.pem"}
    )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "SSL_CERT_FILE='/nonexistent/cert.pem' is not a readable file" in completed.stderr
