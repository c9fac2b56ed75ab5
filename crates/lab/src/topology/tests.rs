//! The topology parser's tests: what parses, and where and how each mistake is reported.

use super::*;

fn err(src: &str) -> TopologyError {
    Topology::parse("t.toml", src).expect_err("should fail")
}

const BASE: &str = r#"name = "t"
[vpc]
cidr = "10.0.0.0/16"
[[subnets]]
name = "s1"
cidr = "10.0.2.0/24"
zone = "a"
[[hosts]]
name = "h1"
subnet = "s1"
"#;

#[test]
fn reference_topology_parses() {
    let t = Topology::parse(REFERENCE_FILE_NAME, REFERENCE_TOPOLOGY).unwrap();
    assert_eq!(t.name, "ecs-multicast");
    assert_eq!(t.subnets.len(), 2);
    assert_eq!(t.hosts[0].max_tasks, 2);
    assert_eq!(t.hosts[0].force_igmp_version, 2);
    assert_eq!(t.hosts[1].force_igmp_version, 0);
    assert_eq!(t.hosts[1].dataplane, Dataplane::Auto);
    let d = t.domain.as_ref().unwrap();
    assert_eq!(d.subnets, vec![0, 1]);
    assert_eq!(d.igmp, mcgate_domain::api::IgmpMode::V2);
    assert_eq!(d.tunnel, mcgate_domain::api::Tunnel::Wireguard);
    assert_eq!(t.services[0].count, 2);
    assert_eq!(t.services[1].command[0], "mcgate");
    assert_eq!(t.controller_net().unwrap().to_string(), "10.0.255.252/30");
}

#[test]
fn ipv6_is_off_unless_the_file_turns_it_on() {
    assert!(!Topology::parse("t.toml", BASE).unwrap().ipv6);
    let on = BASE.replacen("name = \"t\"\n", "name = \"t\"\nipv6 = true\n", 1);
    assert!(Topology::parse("t.toml", &on).unwrap().ipv6);
    let e = err(&BASE.replacen("name = \"t\"\n", "name = \"t\"\nipv6 = \"yes\"\n", 1));
    assert_eq!(e.line, 2, "{e}");
}

#[test]
fn unknown_key_names_line_and_key() {
    let e = err(&format!("{BASE}max_task = 2\n"));
    assert_eq!(e.line, 11, "{e}");
    assert!(e.message.contains("max_task"), "{e}");
    assert!(e.to_string().starts_with("t.toml:11:"), "{e}");
}

#[test]
fn missing_name_is_an_error_with_a_line() {
    let e = err("[vpc]\ncidr = \"10.0.0.0/16\"\n");
    assert!(e.message.contains("name"), "{e}");
    let e = err(&format!(
        "{BASE}[[services]]\ncount = 1\ncommand = [\"true\"]\n"
    ));
    assert!(e.message.contains("missing field `name`"), "{e}");
    assert!(e.line >= 11, "{e}");
}

#[test]
fn subnet_outside_vpc_or_overlapping() {
    let e = err(&BASE.replace("10.0.2.0/24", "10.1.2.0/24"));
    assert_eq!(e.line, 6);
    assert!(e.message.contains("outside the VPC"), "{e}");
    let e = err(&format!(
        "{BASE}[[subnets]]\nname = \"s2\"\ncidr = \"10.0.2.0/25\"\n"
    ));
    assert_eq!(e.line, 13);
    assert!(e.message.contains("overlaps subnet s1"), "{e}");
    let e = err(&BASE.replace("10.0.2.0/24", "10.0.2.1/24"));
    assert!(e.message.contains("write \"10.0.2.0/24\""), "{e}");
}

#[test]
fn host_in_unknown_subnet() {
    let e = err(&BASE.replace("subnet = \"s1\"", "subnet = \"s9\""));
    assert_eq!(e.line, 10);
    assert!(e.message.contains("\"s9\""), "{e}");
    assert!(e.message.contains("write one of: s1"), "{e}");
}

#[test]
fn bad_values_are_located() {
    let e = err(&format!("{BASE}force_igmp_version = 7\n"));
    assert_eq!(e.line, 11);
    let e = err(&format!("{BASE}dataplane = \"ebpf\"\n"));
    assert!(e.message.contains("\"userspace\""), "{e}");
    let e = err(&format!("{BASE}[domain]\nname = \"d\"\nigmp = \"v4\"\n"));
    assert_eq!(e.line, 13);
    let e = err(&format!("{BASE}[domain]\nname = \"d\"\ntunnel = \"gre\"\n"));
    assert_eq!(e.line, 13);
    assert!(e.message.contains("\"vxlan\""), "{e}");
    let e = err(&format!(
        "{BASE}[domain]\nname = \"d\"\nsubnets = [\"s1\", \"nope\"]\n"
    ));
    assert_eq!(e.line, 13);
    let e = err(&BASE.replace("name = \"h1\"", "name = \"vpc\""));
    assert!(e.message.contains("reserved"), "{e}");
    let e = err(&BASE.replace("name = \"h1\"", "name = \"H 1\""));
    assert_eq!(e.line, 9);
}

#[test]
fn services_are_checked() {
    let e = err(&format!("{BASE}[[services]]\nname = \"r\"\ncommand = []\n"));
    assert_eq!(e.line, 13);
    let e = err(&format!(
        "{BASE}[[services]]\nname = \"r\"\ncommand = [\"x\"]\nhost = \"h2\"\n"
    ));
    assert_eq!(e.line, 14);
    let e = err(&format!(
        "{BASE}[[services]]\nname = \"r\"\ncommand = [\"x\"]\nzone = \"q\"\n"
    ));
    assert!(e.message.contains("write one of: a"), "{e}");
    let t = Topology::parse(
        "t.toml",
        &format!(
            "{BASE}[[services]]\nname = \"r\"\ncount = 2\ncommand = [\"x\"]\nenv = {{ A = \"1\" }}\n"
        ),
    )
    .unwrap();
    assert_eq!(t.services[0].env.get("A").map(String::as_str), Some("1"));
    assert_eq!(t.services[0].line, 11);
    assert!(t.domain.is_none());
}

#[test]
fn every_example_parses_and_fits() {
    for (file, src) in [
        ("ecs-multicast.toml", REFERENCE_TOPOLOGY),
        (
            "ecs-multicast-iperf2.toml",
            include_str!("../../../../examples/ecs-multicast-iperf2.toml"),
        ),
        (
            "igmpv3-source-filter.toml",
            include_str!("../../../../examples/igmpv3-source-filter.toml"),
        ),
        (
            "fanout.toml",
            include_str!("../../../../examples/fanout.toml"),
        ),
        (
            "ecs-multicast-containers.toml",
            include_str!("../../../../examples/ecs-multicast-containers.toml"),
        ),
        ("ha.toml", include_str!("../../../../examples/ha.toml")),
    ] {
        let t = Topology::parse(file, src).unwrap_or_else(|e| panic!("{e}"));
        crate::placement::place(&t).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn garbage_never_panics() {
    for src in [
        "",
        "=",
        "name = 1",
        "[[hosts]]\n",
        "name=\"x\"\nvpc=3",
        "\u{0}",
    ] {
        assert!(Topology::parse("t.toml", src).is_err(), "{src:?}");
    }
}

#[test]
fn values_are_checked_by_their_types_at_their_line() {
    let e = err(&BASE.replace("10.0.0.0/16", "10.0.0/16"));
    assert_eq!((e.line, e.column), (3, 8), "{e}");
    assert!(
        e.message
            .starts_with("cidr \"10.0.0/16\" is not an IPv4 network"),
        "{e}"
    );
    let e = err(&format!("{BASE}max_tasks = -3\n"));
    assert_eq!(e.line, 11, "{e}");
    assert!(e.message.contains("write a number from 0 to 64"), "{e}");
    let e = err(&format!("{BASE}max_tasks = \"two\"\n"));
    assert_eq!(e.line, 11, "{e}");
    let e = err(&format!(
        "{BASE}[[services]]\nname = \"r\"\ncount = 1001\ncommand = [\"x\"]\n"
    ));
    assert_eq!(e.line, 13, "{e}");
    assert!(e.message.contains("from 0 to 1000"), "{e}");
    let t = Topology::parse("t.toml", &format!("{BASE}dataplane = \"kernel\"\n")).unwrap();
    assert_eq!(t.hosts[0].dataplane, Dataplane::Kernel);
    assert_eq!(t.hosts[0].max_tasks, super::raw::DEFAULT_MAX_TASKS);
}

#[test]
fn container_services_name_their_image() {
    let svc = |extra: &str| format!("{BASE}[[services]]\nname = \"r\"\ncommand = [\"x\"]\n{extra}");
    let t = Topology::parse(
        "t.toml",
        &svc("runtime = \"podman\"\nimage = \"localhost/iperf:lab\"\n"),
    )
    .unwrap();
    assert_eq!(t.services[0].image.as_deref(), Some("localhost/iperf:lab"));
    let t = Topology::parse("t.toml", &svc("runtime = \"namespace\"\n")).unwrap();
    assert_eq!(t.services[0].image, None);
    let e = err(&svc("runtime = \"podman\"\n"));
    assert!(e.message.contains("names no image"), "{e}");
    assert_eq!(e.line, 14);
    let e = err(&svc("image = \"i\"\n"));
    assert!(e.message.contains("add runtime = \"podman\""), "{e}");
    let e = err(&svc("runtime = \"docker\"\n"));
    assert!(
        e.message
            .contains("\"namespace\" (the default) or \"podman\""),
        "{e}"
    );
    let e = err(&svc("runtime = \"podman\"\nimage = \" \"\n"));
    assert!(e.message.contains("image is empty"), "{e}");
    let t = Topology::parse(
        "t.toml",
        &svc("runtime = \"podman\"\nimage = \"i\"\nbuild = \"Containerfile\"\n"),
    )
    .unwrap();
    assert_eq!(t.services[0].build.as_deref(), Some("Containerfile"));
    let e = err(&svc("build = \"Containerfile\"\n"));
    assert!(
        e.message.contains("builds an image but runs as a process"),
        "{e}"
    );
}

const HA: &str = "[domain]\nname = \"d\"\n[controller]\n";

#[test]
fn controller_section_defaults_and_ha() {
    let t = Topology::parse("t.toml", BASE).unwrap();
    assert_eq!(t.controller, ControlPlane::default());
    assert_eq!(t.control_plane_net(), None);
    let t = Topology::parse(
        "t.toml",
        &format!("{BASE}{HA}replicas = 3\nstore = \"etcd\"\n"),
    )
    .unwrap();
    assert_eq!(
        t.controller,
        ControlPlane {
            replicas: 3,
            store: Store::Etcd,
            etcd_members: 3
        }
    );
    assert_eq!(
        t.control_plane_net().unwrap().to_string(),
        "10.0.255.240/28"
    );
    let t = Topology::parse(
        "t.toml",
        &format!("{BASE}{HA}store = \"etcd\"\netcd_members = 5\n"),
    )
    .unwrap();
    assert_eq!((t.controller.replicas, t.controller.etcd_members), (1, 5));
    let t = Topology::parse("t.toml", &format!("{BASE}{HA}replicas = 1\n")).unwrap();
    assert_eq!(t.controller, ControlPlane::default());
}

#[test]
fn controller_section_mistakes_are_located() {
    let e = err(&format!("{BASE}{HA}replicas = 3\n"));
    assert_eq!(e.line, 14, "{e}");
    assert!(e.message.contains("needs store = \"etcd\""), "{e}");
    for bad in ["0", "8", "-1", "\"3\""] {
        let e = err(&format!("{BASE}{HA}store = \"etcd\"\nreplicas = {bad}\n"));
        assert_eq!(e.line, 15, "{bad}: {e}");
    }
    let e = err(&format!("{BASE}{HA}store = \"etcd\"\nreplicas = 8\n"));
    assert!(e.message.contains("from 1 to 7"), "{e}");
    let e = err(&format!("{BASE}{HA}store = \"raft\"\n"));
    assert!(e.message.contains("\"embedded\""), "{e}");
    let e = err(&format!("{BASE}{HA}store = \"etcd\"\netcd_members = 2\n"));
    assert_eq!(e.line, 15, "{e}");
    assert!(e.message.contains("write 3"), "{e}");
    let e = err(&format!("{BASE}{HA}etcd_members = 3\n"));
    assert!(e.message.contains("the store is embedded"), "{e}");
    let e = err(&format!("{BASE}{HA}replica = 3\n"));
    assert!(e.message.contains("replica"), "{e}");
    let e = err(&format!("{BASE}[controller]\nstore = \"etcd\"\n"));
    assert!(e.message.contains("no [domain]"), "{e}");
    assert_eq!(e.line, 11, "{e}");
}

#[test]
fn the_control_planes_node_names_are_reserved() {
    let e = err(&BASE.replace("name = \"h1\"", "name = \"etcd-1\""));
    assert!(e.message.contains("reserved"), "{e}");
    let e = err(&format!(
        "{BASE}[[services]]\nname = \"controller\"\ncommand = [\"x\"]\n"
    ));
    assert!(e.message.contains("task controller-1"), "{e}");
}

const EXTERNAL: &str = r#"[domain]
name = "d"
[[externals]]
name = "exchange"
cidr = "192.0.2.0/24"
host = "h1"
groups = ["233.252.0.0/24", "239.10.0.0/16"]
sender = ["mcgate", "perf", "send", "--group", "233.252.0.7"]
"#;

#[test]
fn upstream_feed_example_and_an_external_network_parse() {
    let src = include_str!("../../../../examples/upstream-feed.toml");
    let t = Topology::parse("upstream-feed.toml", src).unwrap();
    assert_eq!(t.externals.len(), 1);
    assert_eq!(t.externals[0].host, 0);
    let t = Topology::parse("t.toml", &format!("{BASE}{EXTERNAL}")).unwrap();
    let e = &t.externals[0];
    assert_eq!(
        (e.name.as_str(), e.cidr.to_string(), e.igmp_version),
        ("exchange", "192.0.2.0/24".to_string(), 3)
    );
    assert_eq!(e.groups.len(), 2);
    assert_eq!(e.sender.as_ref().map(Vec::len), Some(5));
}

#[test]
fn external_network_mistakes_are_located() {
    let with = |from: &str, to: &str| err(&format!("{BASE}{}", EXTERNAL.replace(from, to)));
    let e = with("192.0.2.0/24", "10.0.9.0/24");
    assert!(e.message.contains("overlaps the VPC"), "{e}");
    assert_eq!(e.line, 15, "{e}");
    let e = with("host = \"h1\"", "host = \"h9\"");
    assert!(e.message.contains("not defined"), "{e}");
    let e = with("\"233.252.0.0/24\", ", "\"10.0.0.0/8\", ");
    assert!(e.message.contains("not a multicast group range"), "{e}");
    let e = with(
        "groups = [\"233.252.0.0/24\", \"239.10.0.0/16\"]",
        "groups = []",
    );
    assert!(e.message.contains("list the group ranges"), "{e}");
    let e = with("name = \"exchange\"", "name = \"h1\"");
    assert!(e.message.contains("already the name"), "{e}");
    let e = with("sender =", "igmp_version = 1\nsender =");
    assert!(e.message.contains("version 2 or 3"), "{e}");
    let e = err(&format!(
        "{}{}",
        BASE.replace("subnet = \"s1\"", "subnet = \"s1\"\ndataplane = \"kernel\""),
        EXTERNAL
    ));
    assert!(e.message.contains("userspace data plane"), "{e}");
    let e = err(&format!(
        "{BASE}{}",
        EXTERNAL.replace("[domain]\nname = \"d\"\n", "")
    ));
    assert!(e.message.contains("needs a [domain]"), "{e}");
}
