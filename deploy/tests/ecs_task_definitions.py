"""Checks mcgate's ECS task definitions against the ECS API, offline.

Every deploy/ecs/*-task-definition.json is validated as the input of ECS
RegisterTaskDefinition, using the service model that botocore ships (no AWS call).
Every AWS::ECS::TaskDefinition of deploy/ecs/mcgate.yaml is translated to the same
shape (CloudFormation's PascalCase keys matched to the API's member names; intrinsic
functions stand for strings) and validated too, and the settings that matter to mcgate
(network mode, host volumes, command, user, capabilities, mounts) must agree between the two forms.

Usage: python3 ecs_task_definitions.py DEPLOY_ECS_DIR
Exit status 0 when everything validates, 1 otherwise (each problem is printed).
"""

import json
import sys
from pathlib import Path

import botocore.session
import yaml
from botocore.validate import ParamValidator


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that reads CloudFormation's short-form intrinsic functions."""


def _intrinsic(loader, tag_suffix, node):
    return {"Fn::" + tag_suffix: loader.construct_scalar(node)
            if isinstance(node, yaml.ScalarNode) else None}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def _is_intrinsic(value):
    return isinstance(value, dict) and len(value) == 1 and (
        next(iter(value)) == "Ref" or next(iter(value)).startswith("Fn::"))


def from_cfn(value, shape, path, problems):
    """CloudFormation properties -> API parameters of `shape`, key by key."""
    if _is_intrinsic(value):
        return "intrinsic" if shape.type_name == "string" else 0
    if shape.type_name == "structure":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping")
            return {}
        members = {name.lower(): name for name in shape.members}
        out = {}
        for key, item in value.items():
            name = members.get(key.lower())
            if name is None:
                problems.append(f"{path}.{key}: no such member of {shape.name}")
                continue
            out[name] = from_cfn(item, shape.members[name], f"{path}.{key}", problems)
        return out
    if shape.type_name == "list":
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list")
            return []
        return [from_cfn(v, shape.member, f"{path}[{i}]", problems)
                for i, v in enumerate(value)]
    if shape.type_name == "map":
        return {k: from_cfn(v, shape.value, f"{path}.{k}", problems)
                for k, v in value.items()}
    if shape.type_name in ("integer", "long") and isinstance(value, str) and value.isdigit():
        return int(value)
    if shape.type_name == "boolean" and isinstance(value, str):
        return value.lower() == "true"
    return value


def essentials(params):
    """What must agree between the JSON and the CloudFormation form."""
    # Host volumes only: the controller's EFS ids are placeholders in one form and
    # references to the stack's resources in the other.
    host_volumes = {v["name"]: v["host"] for v in params.get("volumes", []) if "host" in v}
    out = {"networkMode": params.get("networkMode"), "hostVolumes": host_volumes,
           "containers": {}}
    for c in params.get("containerDefinitions", []):
        out["containers"][c["name"]] = {
            "command": c.get("command"),
            "user": c.get("user"),
            "readonlyRootFilesystem": c.get("readonlyRootFilesystem"),
            "capabilities": c.get("linuxParameters", {}).get("capabilities"),
            "mountPoints": c.get("mountPoints"),
            "portMappings": c.get("portMappings"),
        }
    return out


def main(ecs_dir):
    shape = (botocore.session.get_session().get_service_model("ecs")
             .operation_model("RegisterTaskDefinition").input_shape)
    validator = ParamValidator()
    problems = []
    by_family = {}
    files = sorted(Path(ecs_dir).glob("*-task-definition.json"))
    if not files:
        problems.append(f"{ecs_dir}: no *-task-definition.json")
    for f in files:
        params = json.loads(f.read_text())
        report = validator.validate(params, shape)
        if report.has_errors():
            problems.append(f"{f}: {report.generate_report()}")
        by_family[params.get("family")] = (f, params)
        print(f"ok   {f.name}: RegisterTaskDefinition input")

    template = yaml.load((Path(ecs_dir) / "mcgate.yaml").read_text(), Loader=_CfnLoader)
    task_defs = {name: r for name, r in template["Resources"].items()
                 if r["Type"] == "AWS::ECS::TaskDefinition"}
    if not task_defs:
        problems.append("mcgate.yaml: no AWS::ECS::TaskDefinition")
    for name, resource in task_defs.items():
        params = from_cfn(resource["Properties"], shape, name, problems)
        report = validator.validate(params, shape)
        if report.has_errors():
            problems.append(f"mcgate.yaml {name}: {report.generate_report()}")
        family = params.get("family")
        if family not in by_family:
            problems.append(f"mcgate.yaml {name}: no JSON task definition of family {family}")
        elif essentials(params) != essentials(by_family[family][1]):
            problems.append(
                f"mcgate.yaml {name} and {by_family[family][0].name} disagree:\n"
                f"  template: {essentials(params)}\n"
                f"  json:     {essentials(by_family[family][1])}")
        print(f"ok   mcgate.yaml {name}: RegisterTaskDefinition input, family {family}")

    for p in problems:
        print(f"FAIL {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
