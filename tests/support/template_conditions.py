"""A CloudFormation/SAM template as one set of parameter values deploys it: enough of the
resolution CloudFormation does before creating anything to test ``deploy/template.yaml``'s
variants without AWS.

Supported: the short-form tags (``!Ref``, ``!If``, ``!GetAtt`` ...) loaded as their long
forms; parameter defaults, ``CommaDelimitedList`` splitting and ``AllowedPattern``; Conditions
made of ``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or`` and ``Condition`` over ``Ref`` (to
parameters), ``Fn::Select``, ``Fn::Split`` and ``Fn::Join``; ``Fn::If`` and ``AWS::NoValue``
anywhere; resources and outputs whose Condition is false left out; SAM's
``Globals.Function`` merged into every ``AWS::Serverless::Function`` (maps merged, lists
concatenated, otherwise the function's own value wins). ``Fn::GetAtt``, ``Fn::Sub`` and
``Ref`` to resources are left as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

PSEUDO_PREFIX = "AWS::"


class Unresolved(ValueError):
    """A value that needs something only CloudFormation knows (an attribute, a resource id)."""


class _NoValue:
    """``Ref AWS::NoValue``: the property or list item is left out."""


NO_VALUE = _NoValue()


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    pass


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_Loader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    """The template with its short-form tags as long-form intrinsics (``!If`` → ``Fn::If``)."""
    loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    assert isinstance(loaded, dict)
    return loaded


def parameter_values(template: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, Any]:
    """Every parameter's value as CloudFormation sees it: the given string or the default, a
    list for list types (``""`` → ``[""]``). Raises ValueError as a deploy would: unknown
    parameter, missing value, value outside its AllowedPattern."""
    declared: Mapping[str, Any] = template.get("Parameters", {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        raw = given.get(name, spec.get("Default"))
        if raw is None:
            raise ValueError(f"parameter {name} has no value and no default")
        raw = str(raw)
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, raw):
            raise ValueError(f"parameter {name} {spec.get('ConstraintDescription', pattern)}")
        kind = str(spec["Type"])
        is_list = kind == "CommaDelimitedList" or kind.startswith("List<")
        values[name] = raw.split(",") if is_list else raw
    return values


class Deployment:
    """One template under one set of parameter values."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str]) -> None:
        self.template = template
        self.parameters = parameter_values(template, parameters)
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = self._truth(self.template["Conditions"][name])
        return self._conditions[name]

    @property
    def conditions(self) -> dict[str, bool]:
        return {name: self.condition(name) for name in self.template.get("Conditions", {})}

    def _truth(self, node: Any) -> bool:
        ((function, argument),) = node.items()
        if function == "Fn::Equals":
            left, right = argument
            return bool(self.value(left) == self.value(right))
        if function == "Fn::Not":
            (inner,) = argument
            return not self._truth(inner)
        if function == "Fn::And":
            return all(self._truth(inner) for inner in argument)
        if function == "Fn::Or":
            return any(self._truth(inner) for inner in argument)
        if function == "Condition":
            return self.condition(argument)
        raise ValueError(f"unsupported condition function {function}")

    def value(self, node: Any) -> Any:
        """A fully known value (strings, lists); raises Unresolved otherwise."""
        if isinstance(node, str | int | float | bool):
            return node
        if isinstance(node, list):
            return [self.value(item) for item in node]
        if isinstance(node, dict) and len(node) == 1:
            ((function, argument),) = node.items()
            if function == "Ref" and argument in self.parameters:
                return self.parameters[argument]
            if function == "Fn::Select":
                index, items = argument
                return self.value(items)[int(self.value(index))]
            if function == "Fn::Split":
                delimiter, text = argument
                return str(self.value(text)).split(self.value(delimiter))
            if function == "Fn::Join":
                delimiter, items = argument
                return str(self.value(delimiter)).join(self.value(items))
        raise Unresolved(repr(node))

    def resolve(self, node: Any) -> Any:
        """``node`` with Fn::If decided, AWS::NoValue dropped, parameters and the string
        functions over them evaluated; what needs a resource is left as written."""
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((function, argument),) = node.items()
            if function == "Fn::If":
                name, when_true, when_false = argument
                return self.resolve(when_true if self.condition(name) else when_false)
            if function == "Ref" and argument == "AWS::NoValue":
                return NO_VALUE
            if function in ("Ref", "Fn::Select", "Fn::Split", "Fn::Join"):
                try:
                    return self.value(node)
                except Unresolved:
                    pass
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def _exists(self, entry: Mapping[str, Any]) -> bool:
        return "Condition" not in entry or self.condition(entry["Condition"])

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """The resources this deployment creates, resolved, SAM Globals merged in."""
        function_globals = self.resolve(self.template.get("Globals", {}).get("Function", {}))
        created: dict[str, dict[str, Any]] = {}
        for name, resource in self.template["Resources"].items():
            if not self._exists(resource):
                continue
            resolved = self.resolve(resource)
            if resolved["Type"] == "AWS::Serverless::Function":
                resolved["Properties"] = _merge(function_globals, resolved.get("Properties", {}))
            created[name] = resolved
        return created

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        return {
            name: self.resolve(output)
            for name, output in self.template.get("Outputs", {}).items()
            if self._exists(output)
        }

    def dangling_references(self) -> list[str]:
        """Ref, Fn::GetAtt and Fn::Sub names that are neither a parameter, a pseudo parameter
        nor a resource this deployment creates."""
        known = set(self.parameters) | set(self.resources)
        found = _referenced(self.resources) | _referenced(self.outputs)
        return sorted(name for name in found if name not in known)


def _merge(global_value: Any, local_value: Any) -> Any:
    if isinstance(global_value, dict) and isinstance(local_value, dict):
        merged = dict(global_value)
        for key, value in local_value.items():
            merged[key] = _merge(global_value[key], value) if key in global_value else value
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return [*global_value, *local_value]
    return local_value


def _referenced(node: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(node, list):
        for item in node:
            names |= _referenced(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                names.add(value)
            elif key == "Fn::GetAtt" and isinstance(value, list):
                names.add(str(value[0]))
            elif key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else value
                for match in re.findall(r"\$\{([^!}][^}]*)\}", text):
                    name = match.split(".", 1)[0]
                    if name not in variables:
                        names.add(name)
                names |= _referenced(variables)
            else:
                names |= _referenced(value)
    return {name for name in names if not name.startswith(PSEUDO_PREFIX)}
