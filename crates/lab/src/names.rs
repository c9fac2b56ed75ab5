//! Names of labs, nodes, namespaces and links.
//!
//! Every namespace a lab makes is `mcgl-<lab>-<node>`; nothing else is ever touched.
//! Interface names are at most 15 bytes (IFNAMSIZ - 1), so they never embed the lab name.

/// Prefix of every namespace a lab makes.
pub const NS_PREFIX: &str = "mcgl-";

/// Node names the lab uses itself (`ui`: the forwarder to the controller's web view).
pub const RESERVED_NODE_NAMES: &[&str] = &["vpc", "ctl", "controller", "ui"];

/// Node names the lab gives the etcd members and controller replicas of an HA lab
/// (`etcd-1`, `controller-1`; the replicas' namespaces are `ctl-1`): a host or task may
/// not take one.
const RESERVED_NODE_PREFIXES: &[&str] = &["etcd-", "ctl-", "controller-"];

/// Whether a host or task may not be called `name`: the lab's own node names.
pub fn is_reserved(name: &str) -> bool {
    RESERVED_NODE_NAMES.contains(&name)
        || RESERVED_NODE_PREFIXES.iter().any(|p| {
            name.strip_prefix(p)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The node name of controller replica `i` (0-based) of an HA lab.
pub fn replica_node(i: usize) -> String {
    format!("controller-{}", i + 1)
}

/// The namespace node name of controller replica `i` (0-based): `ctl-N`, like the
/// single controller's `ctl`.
pub fn replica_netns_node(i: usize) -> String {
    format!("ctl-{}", i + 1)
}

/// The node name (and etcd member name) of etcd member `i` (0-based).
pub fn etcd_node(i: usize) -> String {
    format!("etcd-{}", i + 1)
}

/// The VPC router's port towards a control-plane node (`c-etcd-1`, `c-ctl-1`).
pub fn control_port(netns_node: &str) -> String {
    format!("c-{netns_node}")
}

/// The VPC router's bridge for the control plane of an HA lab.
pub const CONTROL_BRIDGE: &str = "cp";

/// Longest lab, host, service or task name.
pub const MAX_NAME_LEN: usize = 40;

/// Checks a lab, subnet, zone, host, service or task name: lowercase letters, digits and
/// `-`, starting with a letter or digit. Returns why not, as the end of a sentence.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty; write a name of letters, digits and -".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "{name:?} is longer than {MAX_NAME_LEN} characters; shorten it"
        ));
    }
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok_start = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ok_chars || !ok_start {
        return Err(format!(
            "{name:?} may hold only lowercase letters, digits and - (and not start with -); write something like \"host-a\""
        ));
    }
    Ok(())
}

/// The namespace of a node of a lab.
pub fn netns(lab: &str, node: &str) -> String {
    format!("{NS_PREFIX}{lab}-{node}")
}

/// The host-side name of a task's veth: `tk<task>` when it fits, else `tk<index>`.
/// The agent attaches to links matching `tk*`.
pub fn task_link(task: &str, index: usize) -> String {
    link_name(&format!("tk{task}"), &format!("tk{index}"))
}

/// The VPC-side name of a host's uplink: `v-<host>` when it fits, else `v<index>`.
pub fn vpc_port(host: &str, index: usize) -> String {
    link_name(&format!("v-{host}"), &format!("v{index}"))
}

/// `name` when it fits an interface name (15 bytes, IFNAMSIZ less the NUL), else `short`.
fn link_name(name: &str, short: &str) -> String {
    if name.len() <= 15 { name } else { short }.to_string()
}

/// The VPC router's bridge for a subnet.
pub fn subnet_bridge(index: usize) -> String {
    format!("s{index}")
}

/// The gateway host's link to an external network (its agent's `--upstream`): `ext-`
/// and the network's name, cut to 15 bytes. One external network per host, so it is
/// unique in the host's namespace; it never matches the agent's `tk*`.
pub fn external_link(name: &str) -> String {
    let mut s = format!("ext-{name}");
    s.truncate(15);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("host-a").is_ok());
        assert!(check_name("ecs-multicast").is_ok());
        for bad in ["", "-a", "A", "a b", "a_b", "a/b", &"x".repeat(41)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(netns("lab", "host-a"), "mcgl-lab-host-a");
        assert_eq!(task_link("receiver-1", 0), "tkreceiver-1");
        assert_eq!(task_link("a-very-long-service-1", 7), "tk7");
        assert!(task_link(&"x".repeat(40), 63).len() <= 15);
        assert_eq!(vpc_port("host-a", 0), "v-host-a");
        assert_eq!(vpc_port("a-very-long-host", 3), "v3");
        assert!(is_reserved("etcd-1") && is_reserved("controller-12") && is_reserved("ctl-3"));
        assert!(is_reserved("vpc") && !is_reserved("etcd-a") && !is_reserved("etcd-"));
        assert!(is_reserved("ui") && !is_reserved("ui-1"));
        assert_eq!(replica_node(0), "controller-1");
        assert_eq!(netns("lab", &etcd_node(2)), "mcgl-lab-etcd-3");
        assert_eq!(control_port(&replica_netns_node(6)), "c-ctl-7");
    }
}
