"""Prints the agent's command line as a rendered Kubernetes manifest gives it.

Usage: python3 agent_from_manifest.py RENDERED.yaml CONFIG_OUT NODE HOST_IP ADMIN STATE_DIR

Writes the mcgate-agent ConfigMap's agent.toml to CONFIG_OUT and prints the agent
container's args, one a line, with NODE for $(NODE_NAME), HOST_IP for $(HOST_IP),
CONFIG_OUT for the mounted config file, ADMIN for the admin endpoint and STATE_DIR
for the node's state directory, so a test runs the agent exactly as the DaemonSet
would on such a node.
"""

import sys

import yaml


def main(rendered, config_out, node, host_ip, admin, state_dir):
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    config_maps = [d for d in docs if d["kind"] == "ConfigMap"
                   and d["metadata"]["name"] == "mcgate-agent"]
    daemon_sets = [d for d in docs if d["kind"] == "DaemonSet"
                   and d["metadata"]["name"] == "mcgate-agent"]
    if len(config_maps) != 1 or len(daemon_sets) != 1:
        sys.exit(f"{rendered}: expected one mcgate-agent ConfigMap and one DaemonSet")
    with open(config_out, "w") as f:
        f.write(config_maps[0]["data"]["agent.toml"])
    container = next(c for c in daemon_sets[0]["spec"]["template"]["spec"]["containers"]
                     if c["name"] == "agent")
    for arg in container["args"]:
        arg = arg.replace("$(NODE_NAME)", node).replace("$(HOST_IP)", host_ip)
        if arg.startswith("--config="):
            arg = "--config=" + config_out
        elif arg.startswith("--admin="):
            arg = "--admin=" + admin
        elif arg.startswith("--state-dir="):
            arg = "--state-dir=" + state_dir
        print(arg)


if __name__ == "__main__":
    main(*sys.argv[1:])
