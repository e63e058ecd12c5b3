"""Read a stack's Pulumi.<stack>.yaml the way the Pulumi CLI does, refusing what the CLI refuses.

Nothing in a stack file is skipped without a word: each mistake the CLI would stop on (or that
would leave the program on its defaults) is one sentence naming the file, the line and the fix.
What the CLI does, from its source (pulumi/pulumi, sdk/go/common/resource/config/key.go, ParseKey,
which reads every key of a stack file's `config:`; the YAML parser is go-yaml v3):

- a key must be `<namespace>:<name>`; `<namespace>:config:<name>` is the old spelling of the same
  key; anything else (`maxSessions` with no namespace) stops the CLI: "could not parse maxSessions
  as a configuration key (configuration keys should be of the form `<namespace>:<name>`)";
- a key given twice in one mapping stops the parser ("mapping key ... already defined");
- only true/false are booleans (YAML 1.2): `protect: yes` is the string "yes";
- stack names: see components/stacks.py;
- a stack file's top level holds config, environment (Pulumi ESC), secretsprovider, encryptedkey
  and encryptionsalt (ProjectStack in sdk/go/common/workspace/project.go); the CLI skips any other
  key, so a misspelled `confg:` would leave every setting on its default: refused here.

A key in another namespace is legal for the CLI but read by nobody unless a provider owns it, so
only the namespaces this project's program or its provider read are accepted.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from components.settings import CONFIG_NAMESPACE
from components.stack_config import OTHER_READ_NAMESPACES
from components.stacks import stack_name_problem

STACK_FILE_KEYS: tuple[str, ...] = ("config", "environment", "secretsprovider", "encryptedkey", "encryptionsalt")
_OLD_CONFIG_MODULE = "config"
# What the YAML parser calls the construct it was reading, as a person calls it.
_CONSTRUCTS = {"while parsing a flow sequence": "list (`[`)", "while parsing a flow mapping": "mapping (`{`)"}


class StackFileError(Exception):
    """A stack name or stack file the Pulumi CLI would refuse; the message is one sentence for a person."""


class _StackFileLoader(yaml.SafeLoader):
    """YAML as the Pulumi CLI reads stack files: only true/false are booleans (YAML 1.2)."""


_StackFileLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StackFileLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def check_stack_name(stack: str) -> None:
    """Refuse a name the Pulumi CLI refuses (and any that could point outside the project)."""
    problem = stack_name_problem(stack)
    if problem is not None:
        raise StackFileError(problem)


def stack_file(stack: str, project_dir: Path) -> Path:
    """Return the path of a stack's settings file, Pulumi.<stack>.yaml."""
    check_stack_name(stack)
    return project_dir / f"Pulumi.{stack}.yaml"


def list_stacks(project_dir: Path) -> list[str]:
    """Return the names of the stacks that have a Pulumi.<stack>.yaml in the project."""
    return sorted(path.name[len("Pulumi.") : -len(".yaml")] for path in project_dir.glob("Pulumi.*.yaml"))


def parse_config_key(key: str) -> tuple[str, str] | None:
    """Split a stack-file key into (namespace, name) as the CLI's ParseKey does; None if it refuses it."""
    parts = key.split(":")
    if len(parts) == 2:
        return parts[0], parts[1]
    if len(parts) == 3 and parts[1] == _OLD_CONFIG_MODULE:
        return parts[0], parts[2]
    return None


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _refuse_duplicate_keys(node: yaml.Node, name: str) -> None:
    """Stop on a key given twice in one mapping, as the CLI's YAML parser does."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise StackFileError(
                        f"{name} line {_line(key_node)}: {key_node.value} is already set on line "
                        f"{seen[key_node.value]}, which the Pulumi CLI refuses; keep one of the two lines."
                    )
                seen[key_node.value] = _line(key_node)
            _refuse_duplicate_keys(value_node, name)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(item, name)


def _mapping(node: yaml.Node | None, name: str, what: str) -> yaml.MappingNode | None:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"):
        return None
    if not isinstance(node, yaml.MappingNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else f"the value {node.value!r}"
        raise StackFileError(
            f"{name} line {_line(node)}: {what} must be a mapping of keys to values, not {kind}; "
            f"write it as `config:` followed by indented lines such as `  {CONFIG_NAMESPACE}:maxSessions: 5`."
        )
    return node


def _check_key(key_node: yaml.Node, name: str) -> tuple[str, str]:
    """Return (namespace, setting) of one config key, or refuse it with the fix."""
    key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
    where = f"{name} line {_line(key_node)}"
    parsed = parse_config_key(key) if isinstance(key, str) else None
    if parsed is None:
        setting = key.rsplit(":", 1)[-1] if isinstance(key, str) else "<name>"
        raise StackFileError(
            f"{where}: the Pulumi CLI refuses the key {key!r}, because config keys must be <namespace>:<name>; "
            f"write it as {CONFIG_NAMESPACE}:{setting}."
        )
    namespace, setting = parsed
    if namespace != CONFIG_NAMESPACE and namespace not in OTHER_READ_NAMESPACES:
        close = difflib.get_close_matches(namespace, [CONFIG_NAMESPACE], n=1, cutoff=0.6)
        fix = (
            f"did you mean {CONFIG_NAMESPACE}:{setting}?"
            if close
            else f"this project's settings are {CONFIG_NAMESPACE}:<name>; fix or remove the line."
        )
        others = " and ".join(f"{other}:" for other in OTHER_READ_NAMESPACES)
        raise StackFileError(
            f"{where}: nothing reads the key {key!r} (the program reads {CONFIG_NAMESPACE}:<name>, Azure and "
            f"Pulumi read {others}), so it would be ignored; {fix}"
        )
    return namespace, setting


def _config_node(document: yaml.MappingNode, name: str) -> yaml.Node | None:
    """Return the node under `config:`, after refusing top-level keys nothing would read."""
    top_level = {getattr(key, "value", None): (key, value) for key, value in document.value}
    for key, (key_node, _value) in top_level.items():
        if key not in STACK_FILE_KEYS:
            close = difflib.get_close_matches(str(key), STACK_FILE_KEYS, n=1)
            fix = f"did you mean {close[0]}:?" if close else f"a stack file holds only {', '.join(STACK_FILE_KEYS)}."
            raise StackFileError(
                f"{name} line {_line(key_node)}: the Pulumi CLI skips the key {key!r}, so anything under it "
                f"would be ignored; {fix}"
            )
    if "environment" in top_level:
        raise StackFileError(
            f"{name} line {_line(top_level['environment'][0])}: the stack imports a Pulumi ESC environment, "
            "whose values the offline plan cannot read; run `pulumi preview` instead, or plan a stack without one."
        )
    return top_level.get("config", (None, None))[1]


def _check_value(key_node: yaml.Node, value_node: yaml.Node, name: str) -> None:
    """Refuse a project setting with no value, or an encrypted one the offline plan cannot read."""
    where = f"{name} line {_line(key_node)}"
    if isinstance(value_node, yaml.ScalarNode) and value_node.tag == "tag:yaml.org,2002:null":
        raise StackFileError(
            f"{where}: {key_node.value} has no value; write one after the colon "
            f"(e.g. `{key_node.value}: ...`, see docs/settings.md) or delete the line."
        )
    if isinstance(value_node, yaml.MappingNode) and any(
        getattr(key, "value", None) == "secure" for key, _value in value_node.value
    ):
        raise StackFileError(
            f"{where}: {key_node.value} is an encrypted secret (`secure:`), which the offline plan cannot "
            "decrypt (it has no Pulumi CLI or secrets provider); run `pulumi preview` for this stack instead, "
            "or plan a copy of the stack file with a plain value there."
        )


def read_stack_config(stack: str, project_dir: Path, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Return the project's settings in a stack file, keyed without the namespace, as YAML values.

    `keys` limits the values read (and checked) to those settings; the whole file is still checked.
    Raises StackFileError for a bad stack name, a missing file, or anything the CLI would refuse.
    """
    path = stack_file(stack, project_dir)
    if not path.is_file():
        known = ", ".join(list_stacks(project_dir)) or "none"
        raise StackFileError(f"there is no stack file {path.name} (stacks with a file here: {known}).")
    text = path.read_text(encoding="utf-8-sig")
    try:
        root = yaml.compose(text, Loader=_StackFileLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f" line {mark.line + 1}" if mark else ""
        problem = error.problem or error.context or "a syntax error"
        # Where the parser noticed is often past the mistake (an unclosed `[` shows at the end of
        # the file): name where the construct it was reading began, too.
        opened = error.context_mark
        construct = _CONSTRUCTS.get(error.context or "", (error.context or "").removeprefix("while parsing a "))
        began = (
            f", in the {construct} that begins on line {opened.line + 1}"
            if opened is not None and error.context and mark is not None and opened.line != mark.line
            else ""
        )
        raise StackFileError(
            f"{path.name}{line}: this is not valid YAML ({problem}{began}); check the indentation, quotes "
            "and brackets there."
        ) from None
    except yaml.YAMLError as error:  # e.g. a tab or control character the reader refuses
        raise StackFileError(f"{path.name}: this is not valid YAML ({error}); fix the file's text.") from None
    document = _mapping(root, path.name, "the file")
    if document is None:
        return {}
    _refuse_duplicate_keys(document, path.name)
    config_map = _mapping(_config_node(document, path.name), path.name, "config")
    if config_map is None:
        return {}
    loader = _StackFileLoader("")
    settings: dict[str, Any] = {}
    try:
        for key_node, value_node in config_map.value:
            namespace, setting = _check_key(key_node, path.name)
            if namespace == CONFIG_NAMESPACE and (keys is None or setting in keys):
                _check_value(key_node, value_node, path.name)
                settings[setting] = loader.construct_object(value_node, deep=True)
    finally:
        loader.dispose()
    return settings
