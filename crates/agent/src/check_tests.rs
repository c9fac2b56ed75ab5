//! Verdicts of `mcgate agent --check` on made-up hosts.

use super::*;
use mcgate_dataplane::kernel::ProbeMethod;

const ALL_CAPS: u64 = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW) | (1 << CAP_SYS_ADMIN);

fn support(ok: bool) -> Support {
    Support {
        vxlan_mdb: ok,
        kernel_release: if ok { "6.18.0" } else { "6.1.0" }.into(),
        method: ProbeMethod::ScratchDevice,
        reason: if ok {
            "kernel 6.18.0 accepted a VXLAN MDB entry".into()
        } else {
            "kernel 6.1.0 refused a VXLAN MDB entry; Linux 6.3 or newer is needed".into()
        },
    }
}

/// A host where everything works: new kernel, all capabilities, links on br0.
fn good_host() -> Facts {
    Facts {
        kernel_release: "6.18.0".into(),
        capabilities: Some(ALL_CAPS),
        packet_socket: Ok(()),
        netlink: Ok(()),
        kernel: Ok(support(true)),
        force_igmp_version: Some(2),
        underlay: Some(("10.0.2.10".into(), Ok(("eth0".into(), 9001)))),
        attach: vec!["veth*".into()],
        links: vec!["veth1a2b3c4d".into()],
        links_ipv6: vec![(
            "veth1a2b3c4d".into(),
            netdev::Ipv6Link::Ready("fe80::1".parse().unwrap()),
        )],
        masters: Ok(LinkMasters::Bridge("docker0".into())),
        bridge_snooping: Some(("docker0".into(), Some(true))),
        requested: Requested::Auto,
    }
}

fn report(f: &Facts) -> (String, bool, Result<Choice, String>) {
    let (findings, choice) = assess(f);
    let (text, ok) = render(&findings, f.requested, &choice);
    (text, ok, choice)
}

#[test]
fn a_capable_host_with_links_on_a_bridge_gets_the_kernel_data_plane() {
    let (text, ok, choice) = report(&good_host());
    assert!(ok, "{text}");
    assert_eq!(choice.unwrap().kind, DataplaneKind::Kernel);
    assert!(text.contains("data plane: kernel (asked: auto)"), "{text}");
    assert!(text.contains("ports of docker0"), "{text}");
    assert!(text.contains("MTU 9001 (frames up to 8951 bytes"), "{text}");
    assert!(text.contains("an MLD querier runs on each"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
}

#[test]
fn links_without_a_ready_link_local_address_are_noted_for_mld() {
    let mut f = good_host();
    f.links_ipv6
        .push(("veth2".into(), netdev::Ipv6Link::Disabled));
    f.links_ipv6.push((
        "veth3".into(),
        netdev::Ipv6Link::Tentative("fe80::3".parse().unwrap()),
    ));
    let (text, ok, _) = report(&f);
    assert!(ok, "a note, not a failure: {text}");
    assert!(
        text.contains("veth2 ipv6_disabled, veth3 tentative"),
        "{text}"
    );
}

#[test]
fn an_old_kernel_gets_the_relay_with_the_kernel_reason() {
    let mut f = good_host();
    f.kernel = Ok(support(false));
    let (text, ok, choice) = report(&f);
    assert!(ok, "{text}");
    let c = choice.unwrap();
    assert_eq!(c.kind, DataplaneKind::Userspace);
    assert!(c.reason.contains("6.1.0"), "{}", c.reason);
    assert!(text.contains("note  VXLAN multicast tables"), "{text}");
}

#[test]
fn links_on_no_bridge_get_the_relay() {
    let mut f = good_host();
    f.masters = Ok(LinkMasters::NotOneBridge(
        "link cali0a1b2c3d4e5 is not a port of a bridge".into(),
    ));
    f.bridge_snooping = None;
    let (text, ok, choice) = report(&f);
    assert!(ok, "{text}");
    let c = choice.unwrap();
    assert_eq!(c.kind, DataplaneKind::Userspace);
    assert!(c.reason.contains("cali0a1b2c3d4e5"), "{}", c.reason);
}

#[test]
fn a_bridge_without_snooping_support_gets_the_relay() {
    let mut f = good_host();
    f.bridge_snooping = Some(("docker0".into(), None));
    let (text, _, choice) = report(&f);
    assert_eq!(choice.unwrap().kind, DataplaneKind::Userspace, "{text}");
    assert!(text.contains("CONFIG_BRIDGE_IGMP_SNOOPING"), "{text}");
}

#[test]
fn without_cap_net_admin_auto_takes_the_relay_and_kernel_is_refused() {
    let mut f = good_host();
    f.capabilities = Some(1 << CAP_NET_RAW);
    let (text, ok, choice) = report(&f);
    assert!(ok, "{text}");
    assert_eq!(choice.unwrap().kind, DataplaneKind::Userspace);
    assert!(
        text.contains("note  capability             CAP_NET_ADMIN: missing"),
        "{text}"
    );
    f.requested = Requested::Kind(DataplaneKind::Kernel);
    let (text, ok, choice) = report(&f);
    assert!(!ok, "{text}");
    assert!(choice.unwrap_err().contains("CAP_NET_ADMIN"));
    assert!(text.contains("data plane: none (asked: kernel)"), "{text}");
    assert!(text.contains("cannot run here"), "{text}");
}

#[test]
fn no_packet_sockets_or_a_missing_underlay_fail() {
    let mut f = good_host();
    f.packet_socket = Err("Operation not permitted (os error 1)".into());
    let (text, ok, _) = report(&f);
    assert!(!ok, "{text}");
    assert!(text.contains("FAIL  packet sockets"), "{text}");

    let mut f = good_host();
    f.underlay = Some((
        "192.0.2.99".into(),
        Err("not assigned to any interface of this host".into()),
    ));
    let (text, ok, _) = report(&f);
    assert!(!ok, "{text}");
    assert!(
        text.contains("FAIL  underlay               192.0.2.99: not assigned"),
        "{text}"
    );
}

#[test]
fn no_links_yet_is_a_note_and_auto_takes_the_relay() {
    let mut f = good_host();
    f.links.clear();
    f.masters = Ok(LinkMasters::NoLinks);
    f.bridge_snooping = None;
    let (text, ok, choice) = report(&f);
    assert!(ok, "{text}");
    assert_eq!(choice.unwrap().kind, DataplaneKind::Userspace);
    assert!(text.contains("none matches [\"veth*\"] yet"), "{text}");
}

#[test]
fn userspace_asked_for_is_kept_whatever_the_kernel() {
    let mut f = good_host();
    f.requested = Requested::Kind(DataplaneKind::Userspace);
    f.kernel = Err("uname failed".into());
    let (text, ok, choice) = report(&f);
    assert!(ok, "{text}");
    assert_eq!(choice.unwrap().kind, DataplaneKind::Userspace);
}
