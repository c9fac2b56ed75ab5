//! The VXLAN source filter: the kernel accepts VXLAN only from the current peers of the
//! VXLAN device's domain. Linux's VXLAN socket takes any UDP datagram to its port, from
//! anyone, for any VNI; nf_tables in front of it keeps what a peer may send.
//!
//! mcgate owns two tables, both named `mcgate`, rewritten in one transaction on every
//! change (the named counters survive it; `flush table` empties only the chains):
//! - `inet mcgate`, chain `input` (hook input): per domain, by VNI (24 bits at byte 12
//!   of the UDP header, RFC 7348 section 5):
//!   - `tunnel = "vxlan"`: accepted when the source is a peer's underlay address;
//!   - `tunnel = "wireguard"`: accepted only when it came out of the WireGuard device and
//!     its source is a peer's tunnel address (WireGuard already dropped what a peer's key
//!     did not authenticate for that address);
//!
//!   every other datagram to the VXLAN port is counted (`dropped`) and dropped.
//! - `bridge mcgate`, chain `prerouting`: VXLAN entering the host bridge from a task's
//!   port is counted and dropped there, before routing could make a task's forged
//!   underlay source look like a peer's.
//!
//! The tables go on clean shutdown, and a restarted agent's first update adopts (flushes
//! and refills) what a predecessor left, keeping its counters.
//!
//! Why `nft` through the `nftables` crate: its typed JSON schema is the documented,
//! stable interface to nf_tables (what firewalld and netavark use); the netlink crates
//! for nf_tables are either GPL or bind libnftnl. The cost is the `nftables` Debian
//! package (a dependency of the mcgate package).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use nftables::batch::Batch;
use nftables::expr::{
    Expression, Meta, MetaKey, NamedExpression, Payload, PayloadBase, PayloadField, PayloadRaw,
    SetItem,
};
use nftables::helper::{self, NftablesError};
use nftables::schema::{Chain, Counter, FlushObject, NfCmd, NfListObject, Rule, Table};
use nftables::stmt::{self, Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use super::error::Error;

/// The tables' name (in families `inet` and `bridge`).
pub const TABLE: &str = "mcgate";
/// The named counter of dropped datagrams, in both tables.
pub const COUNTER: &str = "dropped";

/// Who may send one domain's VXLAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Senders {
    /// Plain VXLAN from these underlay addresses.
    Underlay(BTreeSet<Ipv4Addr>),
    /// From these tunnel addresses, out of this WireGuard device.
    Wireguard {
        /// The device name.
        device: String,
        /// The peers' tunnel addresses.
        peers: BTreeSet<Ipv4Addr>,
    },
}

/// What the filter must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterSpec {
    /// The VXLAN UDP port.
    pub port: u16,
    /// Per VNI.
    pub domains: BTreeMap<u32, Senders>,
    /// The task ports on the host bridge.
    pub task_ports: BTreeSet<String>,
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

fn iifname() -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta {
        key: MetaKey::Iifname,
    }))
}

fn vxlan_port(port: u16) -> Statement<'static> {
    eq(payload("udp", "dport"), Expression::Number(u32::from(port)))
}

/// The VNI: bits 96..120 of the transport header (8 bytes UDP, 4 bytes flags and
/// reserved, RFC 7348 section 5).
fn vni_is(vni: u32) -> Statement<'static> {
    eq(
        Expression::Named(NamedExpression::Payload(Payload::PayloadRaw(PayloadRaw {
            base: PayloadBase::TH,
            offset: 96,
            len: 24,
        }))),
        Expression::Number(vni),
    )
}

fn one_of(addrs: &BTreeSet<Ipv4Addr>) -> Expression<'static> {
    Expression::Named(NamedExpression::Set(
        addrs
            .iter()
            .map(|a| SetItem::Element(Expression::String(Cow::Owned(a.to_string()))))
            .collect(),
    ))
}

fn count_and_drop() -> [Statement<'static>; 2] {
    [
        Statement::Counter(stmt::Counter::Named(Cow::Borrowed(COUNTER))),
        Statement::Drop(None),
    ]
}

/// Adds (or adopts) one table with its counter and one base chain, emptied.
fn table(batch: &mut Batch<'static>, family: NfFamily, chain: &'static str, hook: NfHook) {
    let t = Table {
        family,
        name: Cow::Borrowed(TABLE),
        handle: None,
    };
    batch.add(NfListObject::Table(t.clone()));
    batch.add_cmd(NfCmd::Flush(FlushObject::Table(t)));
    batch.add(NfListObject::Counter(Counter {
        family,
        table: Cow::Borrowed(TABLE),
        name: Cow::Borrowed(COUNTER),
        handle: None,
        packets: None,
        bytes: None,
    }));
    batch.add(NfListObject::Chain(Chain {
        family,
        table: Cow::Borrowed(TABLE),
        name: Cow::Borrowed(chain),
        _type: Some(NfChainType::Filter),
        hook: Some(hook),
        prio: Some(0),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    }));
}

fn rule(
    family: NfFamily,
    chain: &'static str,
    expr: Vec<Statement<'static>>,
) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family,
        table: Cow::Borrowed(TABLE),
        chain: Cow::Borrowed(chain),
        expr: Cow::Owned(expr),
        ..Rule::default()
    })
}

/// The transaction that makes the tables hold `spec`. Pure.
pub fn transaction(spec: &FilterSpec) -> nftables::schema::Nftables<'static> {
    let mut batch = Batch::new();
    table(&mut batch, NfFamily::INet, "input", NfHook::Input);
    for (vni, senders) in &spec.domains {
        let mut expr = vec![vxlan_port(spec.port), vni_is(*vni)];
        match senders {
            Senders::Underlay(peers) if !peers.is_empty() => {
                expr.push(eq(payload("ip", "saddr"), one_of(peers)));
            }
            Senders::Wireguard { device, peers } if !peers.is_empty() => {
                expr.push(eq(
                    iifname(),
                    Expression::String(Cow::Owned(device.clone())),
                ));
                expr.push(eq(payload("ip", "saddr"), one_of(peers)));
            }
            // No peer: nobody may send this VNI.
            _ => continue,
        }
        expr.push(Statement::Accept(None));
        batch.add(rule(NfFamily::INet, "input", expr));
    }
    let mut last = vec![vxlan_port(spec.port)];
    last.extend(count_and_drop());
    batch.add(rule(NfFamily::INet, "input", last));

    table(
        &mut batch,
        NfFamily::Bridge,
        "prerouting",
        NfHook::Prerouting,
    );
    if !spec.task_ports.is_empty() {
        let ports = Expression::Named(NamedExpression::Set(
            spec.task_ports
                .iter()
                .map(|p| SetItem::Element(Expression::String(Cow::Owned(p.clone()))))
                .collect(),
        ));
        let mut expr = vec![eq(iifname(), ports), vxlan_port(spec.port)];
        expr.extend(count_and_drop());
        batch.add(rule(NfFamily::Bridge, "prerouting", expr));
    }
    batch.to_nftables()
}

fn nft_error(what: &str, e: NftablesError) -> Error {
    let detail = match e {
        NftablesError::NftFailed { stderr, .. } => stderr.trim().to_string(),
        NftablesError::NftExecution { inner, .. }
            if inner.kind() == std::io::ErrorKind::NotFound =>
        {
            "the nft program is missing (install the nftables package)".to_string()
        }
        e => e.to_string(),
    };
    Error::Filter(format!("cannot {what}: {detail}"))
}

/// Makes the tables hold `spec` (one transaction: all or nothing).
pub fn apply(spec: &FilterSpec) -> Result<(), Error> {
    helper::apply_ruleset(&transaction(spec))
        .map_err(|e| nft_error("update the nftables tables", e))
}

/// mcgate's tables that exist now, as (family, name).
fn ours() -> Result<Vec<(String, String)>, Error> {
    let out = helper::get_current_ruleset_raw(helper::DEFAULT_NFT, ["list", "tables"])
        .map_err(|e| nft_error("list the nftables tables", e))?;
    Ok(tables_in(&out)
        .map_err(Error::Filter)?
        .into_iter()
        .filter(|(_, name)| name == TABLE)
        .collect())
}

/// Whether the `inet mcgate` table exists.
pub fn present() -> Result<bool, Error> {
    Ok(ours()?.iter().any(|(family, _)| family == "inet"))
}

/// Removes both tables; tables already gone are not an error. Returns whether there
/// was anything to remove.
pub fn remove() -> Result<bool, Error> {
    let ours = ours()?;
    if ours.is_empty() {
        return Ok(false);
    }
    let mut batch = Batch::new();
    for (family, _) in ours {
        let family = if family == "bridge" {
            NfFamily::Bridge
        } else {
            NfFamily::INet
        };
        batch.delete(NfListObject::Table(Table {
            family,
            name: Cow::Borrowed(TABLE),
            handle: None,
        }));
    }
    helper::apply_ruleset(&batch.to_nftables())
        .map_err(|e| nft_error("remove the nftables tables", e))?;
    Ok(true)
}

/// Datagrams dropped so far: (from non-peers, from task ports).
pub fn drops() -> Result<(u64, u64), Error> {
    let out = helper::get_current_ruleset_raw(helper::DEFAULT_NFT, ["list", "counters"])
        .map_err(|e| nft_error("read the nftables counters", e))?;
    parse_drops(&out).map_err(Error::Filter)
}

/// The objects of nft's JSON output (its `nftables` array). Untrusted text: errors.
fn nft_objects(json: &str) -> Result<Vec<serde_json::Value>, String> {
    let mut v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("nft printed invalid JSON: {e}"))?;
    match v.get_mut("nftables").map(serde_json::Value::take) {
        Some(serde_json::Value::Array(objects)) => Ok(objects),
        _ => Err("nft's JSON has no nftables array".into()),
    }
}

/// (family, name) of each table in `nft -j list tables` output.
pub fn tables_in(json: &str) -> Result<Vec<(String, String)>, String> {
    let objects = nft_objects(json)?;
    Ok(objects
        .iter()
        .filter_map(|o| o.get("table"))
        .filter_map(|t| {
            Some((
                t.get("family")?.as_str()?.to_string(),
                t.get("name")?.as_str()?.to_string(),
            ))
        })
        .collect())
}

/// The packet counts of mcgate's `dropped` counters in `nft -j list counters` output:
/// (inet, bridge). Untrusted text: errors, never panics.
pub fn parse_drops(json: &str) -> Result<(u64, u64), String> {
    let objects = nft_objects(json)?;
    let mut out = (0, 0);
    for c in objects.iter().filter_map(|o| o.get("counter")) {
        let field = |k: &str| c.get(k).and_then(|x| x.as_str());
        if field("table") != Some(TABLE) || field("name") != Some(COUNTER) {
            continue;
        }
        let packets = c.get("packets").and_then(|p| p.as_u64()).unwrap_or(0);
        match field("family") {
            Some("inet") => out.0 += packets,
            Some("bridge") => out.1 += packets,
            _ => {}
        }
    }
    Ok(out)
}
