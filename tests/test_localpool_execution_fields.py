"""Execution request fields beyond the code reach the runtime over HTTP (issue 9): Shell's
execCommandAndArgs (an argument list, never joined into a command line) and stdin, PythonLTS's
returnJupyterFormatExecutionResult. Requests and answers are Azure's 2025-10-02-preview examples
(tests/data/dataplane, see SOURCES.md); every answer is validated against Azure's data-plane
document by PoolClient's hook.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from localpool import LocalPool, wire
from tests.support.dataplane_schema import load_example
from tests.support.localpool_helpers import TOKEN, PoolClient, new_identifier

JUPYTER_EXAMPLES = [
    "CodeExecution_Execute_Result_None_JupyterFormat",
    "CodeExecution_Execute_Result_NaN_JupyterFormat",
    "CodeExecution_Execute_Result_StringNaN_JupyterFormat",
]


SESSIONS = 20


def post(client: PoolClient, identifier: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = client.http.post(
        client.endpoint + "/executions",
        params={"api-version": wire.API_2025_10, "identifier": identifier},
        json=body,
    )
    assert reply.status_code == requests.codes.ok, reply.text
    return reply.json()


@pytest.fixture(scope="module")
def python_client() -> Iterator[PoolClient]:
    # One session per test: more than the default five live sessions.
    with (
        LocalPool(token=TOKEN, container_type="PythonLTS", max_sessions=SESSIONS) as pool,
        PoolClient(pool.endpoint) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def shell_client() -> Iterator[PoolClient]:
    with LocalPool(token=TOKEN, container_type="Shell") as pool, PoolClient(pool.endpoint) as client:
        yield client


@pytest.mark.parametrize("name", JUPYTER_EXAMPLES)
def test_jupyter_format_examples_answer_as_azure(python_client: PoolClient, name: str) -> None:
    recorded = load_example(wire.API_2025_10, name)
    expected = recorded["responses"]["200"]["body"]["result"]
    answer = post(python_client, new_identifier(), recorded["parameters"]["codeExecutionRequest"])
    assert answer["status"] == "Succeeded"
    assert answer["result"]["executionResult"] == expected["executionResult"]
    assert (answer["result"]["stdout"], answer["result"]["stderr"]) == (expected["stdout"], expected["stderr"])


def test_without_jupyter_format_the_nan_result_differs(python_client: PoolClient) -> None:
    # Proves the flag travels: the plain-format NaN example answers otherwise than the Jupyter one.
    plain = load_example(wire.API_2025_10, "CodeExecution_Execute_Result_NaN")
    answer = post(python_client, new_identifier(), plain["parameters"]["codeExecutionRequest"])
    assert answer["result"]["executionResult"] == plain["responses"]["200"]["body"]["result"]["executionResult"]
    jupyter_example = load_example(wire.API_2025_10, "CodeExecution_Execute_Result_NaN_JupyterFormat")
    jupyter = jupyter_example["responses"]["200"]["body"]["result"]
    assert answer["result"]["executionResult"] != jupyter["executionResult"]


def test_jupyter_format_flag_must_be_a_boolean(python_client: PoolClient) -> None:
    reply = python_client.execute(
        new_identifier(), "1", api_version=wire.API_2025_10, returnJupyterFormatExecutionResult="yes"
    )
    assert reply.status_code == requests.codes.bad_request
    assert "returnJupyterFormatExecutionResult" in reply.json()["error"]["message"]


def test_exec_command_and_args_example_lists_an_uploaded_file(shell_client: PoolClient) -> None:
    recorded = load_example(wire.API_2025_10, "CodeExecution_Execute_ShellExecCommandAndArgs")
    identifier = new_identifier()
    uploaded = shell_client.http.post(
        shell_client.endpoint + "/files",
        params={"api-version": wire.API_2025_10, "identifier": identifier},
        files={"file": ("previouslyuploadedfile.txt", b"x")},
    )
    assert uploaded.status_code == requests.codes.ok, uploaded.text
    answer = post(shell_client, identifier, recorded["parameters"]["codeExecutionRequest"])  # as sent: 600 s
    expected = recorded["responses"]["200"]["body"]
    assert answer["status"] == expected["status"]
    assert answer["result"]["stdout"] == expected["result"]["stdout"]
    assert answer["result"]["stderr"] == expected["result"]["stderr"]


def test_exec_command_and_args_are_passed_as_a_list_not_a_command_line(shell_client: PoolClient) -> None:
    answer = post(shell_client, new_identifier(), {"execCommandAndArgs": ["printf", "%s|", "a  b", "$HOME", ";id"]})
    assert answer["result"]["stdout"] == "a  b|$HOME|;id|"
    assert answer["status"] == "0"


def test_stdin_reaches_the_command(shell_client: PoolClient) -> None:
    argv = post(shell_client, new_identifier(), {"execCommandAndArgs": ["cat"], "stdin": "from stdin\n"})
    assert argv["result"]["stdout"] == "from stdin\n"
    line = post(shell_client, new_identifier(), {"shellCommand": "tr a-z A-Z", "stdin": "shout"})
    assert line["result"]["stdout"] == "SHOUT"


def test_legacy_python_print_answers_an_empty_result_as_azures_recording(python_client: PoolClient) -> None:
    # facts: the 2024-02-02-preview recording of print(...) on a Python pool has "result": "" (autogen
    # appends str(result) to the output, so null would show as "None").
    identifier = new_identifier()
    reply = python_client.legacy(identifier, "print('hello-world')")
    assert reply.status_code == requests.codes.ok, reply.text
    properties = reply.json()["properties"]
    assert (properties["stdout"], properties["result"]) == ("hello-world\n", "")
    assert python_client.legacy(identifier, "6 * 7").json()["properties"]["result"] == 42
