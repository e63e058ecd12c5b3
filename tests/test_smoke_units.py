"""Pure unit tests of the smoke check's building blocks: endpoint, identifier, backoff, tokens, outcomes."""

from __future__ import annotations

import itertools
import random
from types import SimpleNamespace

import pytest

from components.azure import CONTAINER_TYPES
from smoke import (
    AzureCredentialTokenProvider,
    ConfigurationError,
    CredentialError,
    Outcome,
    PoolEndpoint,
    Redactor,
    StaticTokenProvider,
    new_identifier,
    stdout_matches,
    validate_identifier,
)
from smoke.auth import REDACTED, normalize_raw_token, token_provider_from_env
from smoke.outcome import worst_outcome
from smoke.protocol import HELLO_WORLD_CODE, IDENTIFIER_PATTERN
from smoke.runner import _outcome_of_status
from smoke.waiting import BACKOFF_CAP_SECONDS, BACKOFF_JITTER_FRACTION, WaitingRetryPolicy

REGIONAL = "https://westus2.dynamicsessions.io/subscriptions/sub/resourceGroups/rg/sessionPools/pool"
APP_HOST = "https://pool.happyhill-70162bb9.westus2.azurecontainerapps.io"
PARAMS = {"api-version": "2024-10-02-preview", "identifier": "id-1"}


# --- endpoint -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (REGIONAL, REGIONAL),
        (REGIONAL + "/", REGIONAL),
        (REGIONAL + "//", REGIONAL),
        (APP_HOST, APP_HOST),
        (APP_HOST + "/", APP_HOST),
        ("  " + APP_HOST + "\n", APP_HOST),
        ("HTTPS://Pool.Example.IO:443/x/", "https://pool.example.io/x"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:9/pool/", "http://localhost:9/pool"),
        ("http://[::1]:7000", "http://[::1]:7000"),
        ("https://Pool.Example.IO:8443/x", "https://pool.example.io:8443/x"),
        ("https://pool.example.io:/x", "https://pool.example.io/x"),
        ("https://pool_1.example.io.", "https://pool_1.example.io."),
    ],
)
def test_endpoint_accepts_documented_shapes_and_loopback_http(url: str, expected: str) -> None:
    assert PoolEndpoint.parse(url).url == expected


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("", "empty"),
        ("http://pool.example.com", "plain http"),
        ("http://10.0.0.1:80", "plain http"),
        ("ftp://pool.example.com", "not an absolute https"),
        ("pool.example.com/sessionPools/x", "not an absolute https"),
        ("https://", "not an absolute https"),
        ("https://user:pw@pool.example.com", "user name or password"),
        ("http://user:pw@pool.example.com:99999", "user name or password"),
        ("https://pool.example.com/?api-version=1", "query string"),
        ("https://pool.example.com/#frag", "query string"),
        ("https://pool.example.com:99999", "not a valid URL"),
        ("https://exa mple.com", "whitespace or control characters"),
        ("https://pool.example.com/a\tb", "whitespace or control characters"),
        ("https://pool.example.com/\x00", "whitespace or control characters"),
        ("https://x.example.com:0", "has port 0, outside 1-65535"),
        ("https://x.example.com:-1", "not a valid URL"),
        ("https://bad!host.example.com", "not a valid DNS name"),
        ("https://" + "a" * 64 + ".example.com", "not a valid DNS name"),
        ("https://" + "a." * 127 + "com", "not a valid DNS name"),
        ("https://-pool.example.com", "not a valid DNS name"),
        ("https://bücher.example", "not a valid DNS name"),
        ("https://[127.0.0.1]", "not a valid"),
        ("https://[::1", "not a valid URL"),
        ("https://user:pw@[::1", "user name or password"),
        ("https://pw@pool.example.com", "user name or password"),
        ("https://pool.example.com/?sig=pw-in-a-query", "query string"),
    ],
)
def test_endpoint_rejects_bad_urls_with_a_sentence(url: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment) as caught:
        PoolEndpoint.parse(url)
    assert "pw" not in str(caught.value)  # a password (or a key in a query) is never echoed


def test_join_keeps_the_base_path_and_encodes_the_identifier() -> None:
    endpoint = PoolEndpoint.parse(REGIONAL + "/")
    url = endpoint.join("/code/execute", {"api-version": "2024-02-02-preview", "identifier": "a&b#c%d;e"})
    assert url == REGIONAL + "/code/execute?api-version=2024-02-02-preview&identifier=a%26b%23c%25d%3Be"


def test_join_on_a_host_only_endpoint() -> None:
    assert PoolEndpoint.parse(APP_HOST).join("/executions", PARAMS) == (
        APP_HOST + "/executions?api-version=2024-10-02-preview&identifier=id-1"
    )


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        # Relative, as the sample shows: joined below the base path.
        (
            "/executions/abc?api-version=2024-10-02-preview&identifier=id-1",
            REGIONAL + "/executions/abc?api-version=2024-10-02-preview&identifier=id-1",
        ),
        # Relative but already carrying the base path: not doubled.
        (
            "/subscriptions/sub/resourceGroups/rg/sessionPools/pool/executions/abc",
            REGIONAL + "/executions/abc?api-version=2024-10-02-preview&identifier=id-1",
        ),
        ("executions/abc", REGIONAL + "/executions/abc?api-version=2024-10-02-preview&identifier=id-1"),
        # Absolute on the same origin (explicit default port): followed as is, missing params added.
        (
            "https://westus2.dynamicsessions.io:443/other/executions/abc?identifier=id-1",
            "https://westus2.dynamicsessions.io:443/other/executions/abc?identifier=id-1&api-version=2024-10-02-preview",
        ),
    ],
)
def test_operation_location_is_resolved_against_the_endpoint(location: str, expected: str) -> None:
    assert PoolEndpoint.parse(REGIONAL).resolve_location(location, PARAMS) == expected


@pytest.mark.parametrize(
    "location",
    [
        "https://evil.example.com/executions/abc",
        "http://westus2.dynamicsessions.io/executions/abc",
        "https://westus2.dynamicsessions.io:8443/executions/abc",
        "//evil.example.com/executions/abc",
        "http://[::1",
        "//[::1/executions/abc",
        "https://westus2.dynamicsessions.io:99999/executions/abc",
    ],
)
def test_operation_location_elsewhere_is_refused(location: str) -> None:
    """Also locations that are no URL at all (urlsplit raises ValueError on them)."""
    endpoint = PoolEndpoint.parse(REGIONAL)
    assert endpoint.resolve_location(location, PARAMS) is None


# --- identifier and output ------------------------------------------------------------------------


@pytest.mark.parametrize("identifier", ["abcd", "0f8fad5b-d9cb-469f-a165-70867728950e", "a|b&c^d%e$f#(g){h}[i];<j>"])
def test_valid_identifiers(identifier: str) -> None:
    assert validate_identifier(identifier) == identifier


@pytest.mark.parametrize("identifier", ["abc", "x" * 129, "has space", "slash/no", "q?x1", "", "ünï-code"])
def test_invalid_identifiers_name_the_rule(identifier: str) -> None:
    with pytest.raises(ConfigurationError, match="4-128 characters"):
        validate_identifier(identifier)


def test_new_identifiers_are_valid_and_fresh() -> None:
    first, second = new_identifier(), new_identifier()
    assert first != second
    assert IDENTIFIER_PATTERN.fullmatch(first)


@pytest.mark.parametrize(
    ("stdout", "ok"),
    [
        ("hello-world\n", True),
        ("hello-world\r\n", True),
        ("hello-world", False),
        ("hello-world\n\n", False),
        (" hello-world\n", False),
        ("Hello-World\n", False),
        ("hello world\n", False),
        ("", False),
        (None, False),
    ],
)
def test_stdout_check_is_strict_but_tolerates_crlf(stdout: str | None, ok: bool) -> None:
    assert stdout_matches(stdout) is ok


# --- waiting ----------------------------------------------------------------------------------------


def _backoff_schedule(jitter_seed: int | None, steps: int = 30) -> list[float]:
    """The delays WaitingRetryPolicy asks RetryPolicy for after 1, 2, ... failed attempts."""
    policy = WaitingRetryPolicy(watch=None, redact=str, progress=lambda _: None)
    if jitter_seed is None:
        policy.rng = SimpleNamespace(uniform=lambda low, high: 0.0)
    else:
        policy.rng = random.Random(jitter_seed)
    settings = policy.configure_retries({})
    delays = []
    for _ in range(steps):
        settings["history"].append(None)
        delays.append(policy.get_backoff_time(settings))
    return delays


def test_backoff_starts_near_one_second_grows_and_caps() -> None:
    delays = _backoff_schedule(jitter_seed=None)
    assert delays[0] == pytest.approx(1.0)
    assert delays[1] == pytest.approx(1.25)
    assert all(later >= earlier for earlier, later in itertools.pairwise(delays))
    assert max(delays) == pytest.approx(BACKOFF_CAP_SECONDS)


def test_backoff_jitter_stays_within_its_band_and_under_the_cap() -> None:
    for delay, expected in zip(_backoff_schedule(jitter_seed=7), _backoff_schedule(jitter_seed=None), strict=True):
        low, high = 1 - BACKOFF_JITTER_FRACTION, 1 + BACKOFF_JITTER_FRACTION
        assert low * expected - 1e-9 <= delay <= min(BACKOFF_CAP_SECONDS, high * expected) + 1e-9


def test_the_execution_post_is_retried_like_a_get() -> None:
    policy = WaitingRetryPolicy(watch=None, redact=str, progress=lambda _: None)
    assert {"GET", "POST"} <= policy.configure_retries({})["methods"]


# --- tokens -----------------------------------------------------------------------------------------


def test_raw_token_normalisation() -> None:
    assert normalize_raw_token("  Bearer abc.def \n") == "abc.def"
    assert normalize_raw_token("bearer xyz") == "xyz"
    assert normalize_raw_token("eyJ0eXAi.payload.sig\n") == "eyJ0eXAi.payload.sig"
    assert normalize_raw_token("Bearer\tabc") == "abc"
    assert normalize_raw_token("Bearer ") == normalize_raw_token("BEARER") == ""
    assert normalize_raw_token("Bearerish-token") == "Bearerish-token"  # only the word, not a prefix of one


@pytest.mark.parametrize("raw", ["Bearer ", "bearer", " Bearer \n", "Bearer\t"])
def test_bearer_without_a_token_is_a_credential_error(raw: str) -> None:
    with pytest.raises(CredentialError, match="holds no token") as caught:
        token_provider_from_env(env={"DYNAMIC_SESSIONS_TOKEN": raw})
    assert "az account get-access-token" in str(caught.value)
    assert "Bearer" not in str(caught.value) and "bearer" not in str(caught.value)


def test_non_ascii_token_is_refused_without_echoing_it() -> None:
    with pytest.raises(CredentialError, match="non-ASCII characters") as caught:
        StaticTokenProvider("tök€n-value")
    assert "tök€n" not in str(caught.value)


def test_empty_token_variable_is_a_credential_error() -> None:
    with pytest.raises(CredentialError, match="DYNAMIC_SESSIONS_TOKEN is set but holds no token"):
        token_provider_from_env(env={"DYNAMIC_SESSIONS_TOKEN": "  \n"})


def test_token_with_inner_whitespace_is_refused_without_echoing_it() -> None:
    with pytest.raises(CredentialError, match="holds whitespace") as caught:
        StaticTokenProvider("first-token\nsecond-token")
    assert "first-token" not in str(caught.value)


def test_env_token_wins_and_is_redacted() -> None:
    provider = token_provider_from_env(env={"DYNAMIC_SESSIONS_TOKEN": "Bearer s3cr3t-token\n"})
    assert isinstance(provider, StaticTokenProvider)
    assert provider.get_token().token == "s3cr3t-token"
    assert provider.redact("echo: s3cr3t-token!") == f"echo: {REDACTED}!"
    assert "s3cr3t" not in provider.redact("echo: Bearer s3cr3t-token\n")


def test_short_test_tokens_are_redacted_only_where_they_stand_alone() -> None:
    redactor = Redactor()
    redactor.add("x")
    assert redactor("exit 4; token x; Bearer x") == f"exit 4; token {REDACTED}; Bearer {REDACTED}"


def test_redactor_scrubs_every_secret_it_knows() -> None:
    redactor = Redactor()
    redactor.add("tok-1")
    redactor.add("tok-1-longer")
    assert redactor("a tok-1-longer b tok-1 c") == f"a {REDACTED} b {REDACTED} c"


def test_missing_azure_credential_says_how_to_sign_in() -> None:
    class FailingCredential:
        def get_token(self, *scopes: str) -> None:
            raise RuntimeError("DefaultAzureCredential failed.\nEnvironmentCredential: ...")

    provider = AzureCredentialTokenProvider(credential=FailingCredential())
    with pytest.raises(CredentialError) as caught:
        provider.get_token()
    message = str(caught.value)
    assert "az login" in message
    assert "DYNAMIC_SESSIONS_TOKEN" in message
    assert "EnvironmentCredential" not in message  # one line, not the whole chain
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# --- outcomes -------------------------------------------------------------------------------------


def test_worst_outcome_order_and_exit_codes() -> None:
    assert worst_outcome([Outcome.PASSED, Outcome.FAILED]) is Outcome.FAILED
    assert worst_outcome([Outcome.FAILED, Outcome.UNREACHABLE]) is Outcome.UNREACHABLE
    assert worst_outcome([Outcome.UNREACHABLE, Outcome.UNAUTHORIZED]) is Outcome.UNAUTHORIZED
    assert worst_outcome([Outcome.UNAUTHORIZED, Outcome.CONFIGURATION]) is Outcome.CONFIGURATION
    assert worst_outcome([]) is Outcome.UNREACHABLE
    assert [outcome.exit_code for outcome in Outcome] == [0, 1, 4, 3, 2]


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (401, Outcome.UNAUTHORIZED),
        (403, Outcome.UNAUTHORIZED),
        (404, Outcome.UNREACHABLE),
        (429, Outcome.UNREACHABLE),
        (500, Outcome.UNREACHABLE),
        (503, Outcome.UNREACHABLE),
        (400, Outcome.FAILED),
        (409, Outcome.FAILED),
        (302, Outcome.FAILED),
    ],
)
def test_status_classification(status: int, outcome: Outcome) -> None:
    assert _outcome_of_status(status) is outcome


def test_one_hello_world_per_container_type_of_the_component() -> None:
    assert set(HELLO_WORLD_CODE) == set(CONTAINER_TYPES)


def test_every_public_name_resolves() -> None:
    import smoke

    for name in smoke.__all__:
        assert getattr(smoke, name) is not None, name


def test_usage_errors_need_no_http_stack() -> None:
    """``python -m smoke --help`` and usage errors answer before azure-core and requests are imported."""
    import subprocess
    import sys
    from pathlib import Path

    loaded = "import sys, smoke.cli; print(sorted(m for m in ('azure.core', 'requests') if m in sys.modules))"
    root = Path(__file__).resolve().parent.parent
    completed = subprocess.run([sys.executable, "-c", loaded], cwd=root, capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"
