"""Evaluates the Bicep expressions of infra/ the way a deployment would, for tests/test_azd_hooks.py.

No Bicep compiler or ARM runs here, so the template is parsed with pycep-parser (as tests/test_infra.py
does) and the expressions `azd provision` depends on are evaluated from that tree: names, module
parameters and outputs, app settings, role assignments. What only Azure knows at deployment time (a
storage account's endpoints, an identity's ids, a site's host name) comes from `runtime_properties`,
shaped as ARM returns it and derived from the resource's name, so that it is stable across provisions.

Limits, stated rather than hidden: pycep keeps identifiers and string literals alike as Python str, so
a str that names a parameter, variable, resource or module of the same file is read as that symbol
(no literal of infra/ that these tests evaluate collides with one); pycep groups `a == b && c` as
`a == (b && c)`, which is why infra/ parenthesises such expressions.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

NAMESPACE = uuid.UUID("6f1d3b8a-8f4e-4c1e-9d3a-5a0f2b7c9e11")


@cache
def parse(path: Path) -> dict[str, Any]:
    return BicepParser().parse(file_path=path)


def fake_guid(*parts: Any) -> str:
    return str(uuid.uuid5(NAMESPACE, "|".join(str(p) for p in parts)))


def unique_string(*parts: Any) -> str:
    """13 characters, deterministic in its arguments, as Bicep's uniqueString()."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return "".join(chr(ord("a") + int(c, 16) % 26) if i % 3 else c for i, c in enumerate(digest[:13]))


def accessor_chain(operands: dict[str, Any]) -> list[Any]:
    """`a.b.c` as [a, "b", "c"]: pycep nests it as a.(b.c)."""
    parts = []
    for node in (operands["operand_1"], operands["operand_2"]):
        if isinstance(node, dict) and node.get("operator", {}).get("type") == "property_accessor":
            parts.extend(accessor_chain(node["operator"]["operands"]))
        else:
            parts.append(node)
    return parts


@dataclass(frozen=True)
class Deployment:
    """Where a template is deployed: what ARM's functions return there."""

    subscription_id: str
    tenant_id: str
    location: str
    resource_group: str = ""


def runtime_properties(resource_type: str, name: str, location: str) -> dict[str, Any]:
    """The read-only properties ARM fills in, for the resource types whose properties infra/ reads."""
    if resource_type == "Microsoft.Storage/storageAccounts":
        return {"primaryEndpoints": {"blob": f"https://{name}.blob.core.windows.net/",
                                     "queue": f"https://{name}.queue.core.windows.net/"}}
    if resource_type == "Microsoft.ManagedIdentity/userAssignedIdentities":
        return {"clientId": fake_guid("client", name), "principalId": fake_guid("principal", name)}
    if resource_type == "Microsoft.Insights/components":
        return {"ConnectionString": f"InstrumentationKey={fake_guid('ikey', name)};"
                                    f"IngestionEndpoint=https://{location}.in.applicationinsights.azure.com/"}
    if resource_type == "Microsoft.OperationalInsights/workspaces":
        return {"customerId": fake_guid("customer", name)}
    if resource_type == "Microsoft.Web/sites":
        # Apps created since June 2024 may get <app>-<hash>.<region>-01.azurewebsites.net (docs/azureml.md).
        return {"defaultHostName": f"{name}-d4e5f6.{location}-01.azurewebsites.net"}
    return {}


@dataclass
class Resource:
    scope: Scope
    symbol: str

    @property
    def body(self) -> dict[str, Any]:
        config = self.scope.tree["resources"][self.symbol]["config"]
        return config["config"] if "condition" in config and "config" in config else config

    @property
    def type(self) -> str:
        return self.scope.tree["resources"][self.symbol]["type"]

    @property
    def condition(self) -> bool:
        config = self.scope.tree["resources"][self.symbol]["config"]
        return bool(self.scope.eval(config["condition"])) if "condition" in config and "config" in config else True

    def get(self, key: str) -> Any:
        body = self.body
        name = self.scope.eval(body["name"])
        if key == "name":
            return name
        if key == "id":
            if self.type == "Microsoft.Resources/resourceGroups":
                return f"/subscriptions/{self.scope.deployment.subscription_id}/resourceGroups/{name}"
            parent = body.get("parent")
            if parent:
                return f"{self.scope.resolve(parent).get('id')}/{self.type.rsplit('/', 1)[1]}/{name}"
            return (f"/subscriptions/{self.scope.deployment.subscription_id}/resourceGroups/"
                    f"{self.scope.deployment.resource_group}/providers/{self.type}/{name}")
        if key == "properties":
            return runtime_properties(self.type, name, self.scope.deployment.location)
        if key == "identity":
            return {"principalId": fake_guid("system-identity", self.get("id"))}
        raise KeyError(f"{self.symbol}.{key}")


@dataclass
class Module:
    scope: Scope
    symbol: str
    _child: Scope | None = None

    def get(self, key: str) -> Any:
        if key != "outputs":
            raise KeyError(f"{self.symbol}.{key}")
        return self.child().outputs()

    def child(self) -> Scope:
        """The module's template with its parameters evaluated here, deployed to its scope's group."""
        if self._child is None:
            module = self.scope.tree["modules"][self.symbol]
            config = module["config"]
            params = {name: self.scope.eval(node) for name, node in config["params"].items()}
            group = self.scope.resolve(config["scope"]).get("name") if "scope" in config else ""
            d = self.scope.deployment
            deployment = Deployment(d.subscription_id, d.tenant_id, d.location, group or d.resource_group)
            self._child = Scope(self.scope.path.parent / module["detail"]["path"], params, deployment)
        return self._child


class Outputs(dict):
    """`module.outputs`: evaluated on access."""

    def __init__(self, scope: Scope) -> None:
        super().__init__()
        self.scope = scope

    def __missing__(self, key: str) -> Any:
        return self.scope.eval(self.scope.tree["outputs"][key]["value"])

    def get(self, key: str, default: Any = None) -> Any:
        return self[key]


@dataclass
class Scope:
    path: Path
    params: dict[str, Any]
    deployment: Deployment
    tree: dict[str, Any] = field(init=False)
    _modules: dict[str, Module] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.tree = parse(self.path)
        declared = self.tree.get("parameters", {})
        unknown = set(self.params) - set(declared)
        assert not unknown, f"{self.path.name} declares no parameter {sorted(unknown)}"
        for name, spec in declared.items():
            if name not in self.params:
                default = spec.get("default")
                assert default is not None, f"{self.path.name}: parameter {name} has no value and no default"
                # A parameter default is a literal in infra/ (see the module docstring).
                self.params[name] = default if not isinstance(default, dict) else self.eval(default)

    def outputs(self) -> Outputs:
        return Outputs(self)

    def allowed(self, param: str) -> list[Any] | None:
        for decorator in self.tree["parameters"][param].get("decorators", []):
            if decorator.get("type") == "allowed":
                return decorator["argument"]
        return None

    def resources(self, resource_type: str) -> list[Resource]:
        return [Resource(self, symbol) for symbol, res in self.tree.get("resources", {}).items()
                if res["type"] == resource_type]

    def resolve(self, symbol: str) -> Any:
        if symbol in self.params:
            return self.params[symbol]
        if symbol in self.tree.get("variables", {}):
            return self.eval(self.tree["variables"][symbol]["value"])
        if symbol in self.tree.get("resources", {}):
            return Resource(self, symbol)
        if symbol in self.tree.get("modules", {}):
            return self._modules.setdefault(symbol, Module(self, symbol))
        raise KeyError(symbol)

    def is_symbol(self, text: str) -> bool:
        return text in self.params or any(text in self.tree.get(kind, {})
                                           for kind in ("variables", "resources", "modules"))

    def reference(self, text: str) -> Any:
        """`a.b.c` inside ${…}."""
        match = re.fullmatch(r"([A-Za-z_]\w*)((?:\.\w+)*)", text.strip())
        assert match, f"unsupported interpolation ${{{text}}}"
        value = self.resolve(match.group(1))
        for key in filter(None, match.group(2).split(".")):
            value = self.member(value, key)
        return value

    @staticmethod
    def member(value: Any, key: str) -> Any:
        if isinstance(value, (Resource, Module)):
            return value.get(key)
        return value[key]

    def eval(self, node: Any) -> Any:
        if isinstance(node, str):
            if "${" in node:
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(self.reference(m.group(1))), node)
            return self.resolve(node) if self.is_symbol(node) else node
        if isinstance(node, list):
            return [self.eval(item) for item in node]
        if isinstance(node, dict) and "function" in node:
            return self.call(node["function"]["type"], [self.eval(v) for v in
                                                         (node["function"].get("parameters") or {}).values()
                                                         if v is not None])
        if isinstance(node, dict) and "operator" in node:
            return self.operate(node["operator"]["type"], node["operator"]["operands"])
        if isinstance(node, dict):
            return {self.eval(key) if "${" in key else key.strip("'"): self.eval(value)
                    for key, value in node.items()}
        return node

    def operate(self, op: str, operands: dict[str, Any]) -> Any:
        if op == "conditional":
            branch = "true_value" if self.eval(operands["condition"]) else "false_value"
            return self.eval(operands[branch])
        if op == "property_accessor":
            first, *keys = accessor_chain(operands)
            value = self.eval(first)
            for key in keys:
                value = self.member(value, key)
            return value
        if op == "not":
            return not self.eval(operands["bool_value"])
        left, right = self.eval(operands["operand_1"]), self.eval(operands["operand_2"])
        if op == "equals":
            return left == right
        if op == "not_equals":
            return left != right
        if op == "and":
            return bool(left) and bool(right)
        if op == "or":
            return bool(left) or bool(right)
        raise NotImplementedError(op)

    def call(self, name: str, args: list[Any]) -> Any:
        d = self.deployment
        if name == "empty":
            return args[0] in ("", None) or (isinstance(args[0], (dict, list)) and not args[0])
        if name == "to_lower":
            return args[0].lower()
        if name == "unique_string":
            return unique_string(*args)
        if name == "guid":
            return fake_guid(*args)
        if name == "subscription":
            return {"id": f"/subscriptions/{d.subscription_id}", "subscriptionId": d.subscription_id,
                    "tenantId": d.tenant_id}
        if name == "tenant":
            return {"tenantId": d.tenant_id}
        if name == "resource_group":
            return {"name": d.resource_group, "location": d.location,
                    "id": f"/subscriptions/{d.subscription_id}/resourceGroups/{d.resource_group}"}
        if name == "subscription_resource_id":
            return f"/subscriptions/{d.subscription_id}/providers/{args[0]}/{args[1]}"
        if name == "environment":
            return {"suffixes": {"storage": "core.windows.net"}}
        if name == "union":
            merged: dict[str, Any] = {}
            for arg in args:
                merged.update(arg)
            return merged
        raise NotImplementedError(name)
