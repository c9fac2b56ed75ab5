"""Prints the shell script that mcgate.yaml's SSM association runs on the instances.

Usage: python3 ecs_instance_script.py deploy/ecs/mcgate.yaml [--agent-toml UNDERLAY_IP]

AWS-RunShellScript joins the `commands` lines into one script. Fn::Sub references
become the parameters' defaults (or a sample value), so the result can be checked with
`sh -n`. With --agent-toml, prints instead the /etc/mcgate/agent.toml the script
writes, with instance metadata answered by `i-0123456789abcdef0` and UNDERLAY_IP, so
the agent itself can read it.
"""

import re
import sys

import yaml

from ecs_task_definitions import _CfnLoader


def agent_toml(script, underlay_ip):
    m = re.search(r"cat > /etc/mcgate/agent.toml <<CONF\n(.*?)\nCONF", script, re.S)
    if not m:
        sys.exit("the script writes no /etc/mcgate/agent.toml")
    return (m.group(1).replace("$(md instance-id)", "i-0123456789abcdef0")
            .replace("$(md local-ipv4)", underlay_ip))


def main(path, *rest):
    template = yaml.load(open(path).read(), Loader=_CfnLoader)
    params = {k: str(v.get("Default", f"sample-{k}"))
              for k, v in template["Parameters"].items()}
    associations = [r for r in template["Resources"].values()
                    if r["Type"] == "AWS::SSM::Association"]
    if len(associations) != 1:
        sys.exit(f"{path}: expected one AWS::SSM::Association")
    lines = []
    for c in associations[0]["Properties"]["Parameters"]["commands"]:
        if isinstance(c, dict):
            (fn, text), = c.items()
            if fn != "Fn::Sub":
                sys.exit(f"{path}: unexpected {fn} in commands")
            missing = [n for n in re.findall(r"\$\{([A-Za-z0-9:]+)\}", text) if n not in params]
            if missing:
                sys.exit(f"{path}: Fn::Sub names unknown parameters {missing}")
            c = re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: params[m.group(1)], text)
        lines.append(c.rstrip("\n"))
    script = "\n".join(lines)
    if rest and rest[0] == "--agent-toml":
        print(agent_toml(script, rest[1]))
    else:
        print(script)


if __name__ == "__main__":
    main(*sys.argv[1:])
