"""A stand-in for the Azure CLI (`az`) on the PATH of the azd hooks under test (tests/test_azd_hooks.py).

Copied into a temporary bin/ as the executable `az`: it logs its argv to calls.jsonl and answers from
cloud.json, the state of a small simulated subscription that the test's azd stand-in provisions and tears
down. It answers only the calls it models, the way `az` prints them: the resource's JSON, then `--query`
applied with JMESPath (the Azure CLI's query language), then `--output json|tsv|none`; a missing resource
is az's one-line error and exit code 3. Anything else fails loudly (exit 2), so a new call in a hook needs
a new answer here, and tests/test_azd_hooks.py checks every logged call with azure-cli's own parser.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def state_dir() -> Path:
    return Path(os.environ["STUB_DIR"])


def load() -> dict[str, Any]:
    return json.loads((state_dir() / "cloud.json").read_text())


def save(cloud: dict[str, Any]) -> None:
    (state_dir() / "cloud.json").write_text(json.dumps(cloud, indent=1))


def log(tool: str, argv: list[str]) -> None:
    with (state_dir() / "calls.jsonl").open("a") as f:
        f.write(json.dumps({"tool": tool, "argv": argv}) + "\n")


class AzError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def split(argv: list[str]) -> tuple[tuple[str, ...], dict[str, list[str]]]:
    """Command words, then every --option with the values that follow it."""
    words: list[str] = []
    options: dict[str, list[str]] = {}
    current: str | None = None
    for arg in argv:
        if arg.startswith("--"):
            current = arg
            options[current] = []
        elif current is None:
            words.append(arg)
        else:
            options[current].append(arg)
    return tuple(words), options


def one(options: dict[str, list[str]], name: str) -> str:
    values = options.get(name) or []
    if len(values) != 1:
        raise AzError(f"the stand-in expects exactly one value for {name}", 2)
    return values[0]


def group(cloud: dict[str, Any], options: dict[str, list[str]]) -> dict[str, Any]:
    name = one(options, "--resource-group")
    if name not in cloud["groups"]:
        raise AzError(f"(ResourceGroupNotFound) Resource group '{name}' could not be found.", 3)
    return cloud["groups"][name]


def app(cloud: dict[str, Any], options: dict[str, list[str]]) -> dict[str, Any]:
    name = one(options, "--name")
    apps = group(cloud, options)["apps"]
    if name not in apps:
        raise AzError(f"(ResourceNotFound) The Resource 'Microsoft.Web/sites/{name}' under resource group "
                      f"'{one(options, '--resource-group')}' was not found.", 3)
    return apps[name]


def topic_subscriptions(cloud: dict[str, Any], options: dict[str, list[str]]) -> dict[str, Any]:
    topics = group(cloud, options)["topics"]
    name = one(options, "--system-topic-name")
    if name not in topics:
        raise AzError(f"(ResourceNotFound) The Resource 'Microsoft.EventGrid/systemTopics/{name}' was not found.", 3)
    return topics[name]


def event_subscription(options: dict[str, list[str]]) -> dict[str, Any]:
    endpoint = one(options, "--endpoint")
    if one(options, "--endpoint-type") != "webhook":
        raise AzError("the stand-in models webhook subscriptions only", 2)
    return {"name": one(options, "--name"), "provisioningState": "Succeeded",
            "destination": {"endpointType": "WebHook", "endpointUrl": endpoint,
                            "endpointBaseUrl": endpoint.split("?", 1)[0]},
            "filter": {"includedEventTypes": options["--included-event-types"],
                       "subjectBeginsWith": one(options, "--subject-begins-with")}}


def answer(cloud: dict[str, Any], words: tuple[str, ...], options: dict[str, list[str]]) -> Any:
    if words == ("group", "exists"):
        return one(options, "--name") in cloud["groups"]
    if words == ("resource", "list"):
        kind = one(options, "--resource-type")
        if kind != "Microsoft.MachineLearningServices/workspaces":
            raise AzError(f"the stand-in lists no {kind}", 2)
        workspaces = group(cloud, options)["workspaces"]
        return [{"name": name, "type": kind, "id": ws["id"]} for name, ws in workspaces.items()]
    if words == ("functionapp", "show"):
        site = app(cloud, options)
        return {"name": one(options, "--name"), "defaultHostName": site["defaultHostName"], "state": "Running"}
    if words == ("functionapp", "keys", "list"):
        site = app(cloud, options)
        site["key_polls"] += 1
        # The host creates blobs_extension once it runs with the blob extension, some polls after deploy.
        ready = site["running"] and site["key_polls"] > cloud["key_after"]
        return {"functionKeys": {"default": "function-key"}, "masterKey": "master-key",
                "systemKeys": {"blobs_extension": site["blobs_extension"]} if ready else {}}
    if words == ("functionapp", "config", "appsettings", "list"):
        return [{"name": k, "slotSetting": False, "value": v} for k, v in app(cloud, options)["settings"].items()]
    if words == ("functionapp", "config", "appsettings", "set"):
        settings = app(cloud, options)["settings"]
        for pair in options["--settings"]:
            key, _, val = pair.partition("=")
            settings[key] = val
        cloud["writes"].append({"app_settings": sorted(k.partition("=")[0] for k in options["--settings"])})
        return [{"name": k, "slotSetting": False, "value": None} for k in settings]
    if words[:3] == ("eventgrid", "system-topic", "event-subscription"):
        subscriptions = topic_subscriptions(cloud, options)
        name = one(options, "--name")
        if words[3] == "show":
            if name not in subscriptions:
                raise AzError(f"(ResourceNotFound) The Resource 'Microsoft.EventGrid/systemTopics/"
                              f"{one(options, '--system-topic-name')}/eventSubscriptions/{name}' was not found.", 3)
            shown = json.loads(json.dumps(subscriptions[name]))
            if "--include-full-endpoint-url" not in options:
                shown["destination"]["endpointUrl"] = None
            return shown
        if words[3] in ("create", "update"):
            if (name in subscriptions) != (words[3] == "update"):
                raise AzError(f"(Conflict) event subscription {name}: {words[3]} of "
                              f"{'an existing' if name in subscriptions else 'a missing'} one", 1)
            subscriptions[name] = event_subscription(options)
            cloud["writes"].append({"event_subscription": words[3]})
            return subscriptions[name]
    raise AzError(f"the az stand-in has no answer for: az {' '.join(words)}", 2)


def output(result: Any, options: dict[str, list[str]]) -> str:
    if "--query" in options:
        import jmespath

        result = jmespath.search(one(options, "--query"), result)
    kind = one(options, "--output") if "--output" in options else "json"
    if kind == "none":
        return ""
    if kind == "tsv":
        if isinstance(result, (dict, list)):
            raise AzError("the stand-in prints only a single value as tsv", 2)
        return "" if result is None else str(result).lower() if isinstance(result, bool) else str(result)
    return json.dumps(result, indent=2)


def main() -> int:
    argv = sys.argv[1:]
    log("az", argv)
    words, options = split(argv)
    cloud = load()
    try:
        result = answer(cloud, words, options)
        text = output(result, options)
    except AzError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return exc.code
    save(cloud)
    if text:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
