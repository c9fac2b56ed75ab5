//! The admin commands: `mcgate domain|members|sources|agents|groups|traffic`. Each reaches the
//! controller named by `--controller` (or the running lab's, or the default), prints a
//! table for people or JSON with `--json`, and turns every failure into one sentence and
//! a non-zero exit.

mod args;
mod replica;
mod table;
mod tokens;
mod traffic;

use std::process::ExitCode;

use mcgate_client::credentials::{ADMIN_CREDENTIALS_FILE, DEFAULT_CREDENTIALS};
use mcgate_client::table::{dash, list};
use mcgate_client::{Client, ClientError, Credentials};
use mcgate_domain::api::*;
use serde::Serialize;

pub use args::*;
pub use replica::{ControllerCmd, run_controller_cmd};
use table::Table;

/// Parses a duration (`125s`, `2m`, `500ms`, `1m 30s`, as `humantime` reads them) or a
/// bare number of seconds into milliseconds.
fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let ms = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u64>().ok().and_then(|n| n.checked_mul(1_000))
    } else {
        humantime::parse_duration(s)
            .ok()
            .and_then(|d| u64::try_from(d.as_millis()).ok())
    };
    ms.ok_or_else(|| format!("{s:?} is not a duration; write e.g. 125s, 2m or 500ms"))
}

/// Runs one admin command.
pub fn run(cmd: AdminCommand) -> ExitCode {
    crate::block_on(
        tokio::runtime::Builder::new_current_thread(),
        dispatch(cmd),
        |e| sentence(&e),
    )
}

/// Registers (POST) or deregisters (DELETE) a static member or source of `domain`, and
/// says so.
async fn change_static<S: Serialize>(
    conn: &Conn,
    domain: &str,
    kind: &str,
    register: bool,
    spec: &S,
    what: &str,
) -> Result<(), ClientError> {
    let c = client(conn)?;
    let path = format!("{}/{kind}", domain_path(domain)?);
    if register {
        let _: serde_json::Value = c.post(&path, spec).await?;
        println!("registered {what}");
    } else {
        let _: serde_json::Value = c.delete(&path, Some(spec)).await?;
        println!("deregistered {what}");
    }
    Ok(())
}

/// One sentence for a failure, naming the field at fault when the controller did.
fn sentence(e: &ClientError) -> String {
    match e {
        ClientError::Status {
            message,
            field: Some(f),
            ..
        } if !message.contains(f.as_str()) => format!("{message} (field `{f}`)"),
        other => other.to_string(),
    }
}

/// The client for `conn`, and the credential file it uses, if any.
fn connect(conn: &Conn) -> Result<(Client, Option<Credentials>), ClientError> {
    use std::path::Path;
    let load = |p: &Path| Credentials::load(p).map_err(ClientError::from);
    let given = conn.credentials.as_deref();
    let url = match &conn.controller {
        Some(u) => u.clone(),
        None => match given {
            Some(p) => {
                let c = load(p)?;
                return Ok((Client::from_credentials(&c)?, Some(c)));
            }
            None => Client::default_url()?,
        },
    };
    if url.starts_with("unix:") {
        // The socket's file mode is the credential; a lab's admin file still gives
        // `credential create --output` the controller's URL and CA.
        let lab = Path::new(url.trim_start_matches("unix:"))
            .parent()
            .map(|d| d.join("controller").join(ADMIN_CREDENTIALS_FILE));
        let creds = match given.map(Path::to_path_buf).or(lab) {
            Some(p) if p.exists() => load(&p).ok(),
            _ => None,
        };
        return Ok((Client::new(&url)?, creds));
    }
    match Credentials::find(given, Path::new(DEFAULT_CREDENTIALS)) {
        Some(p) => {
            let c = load(&p)?;
            let client = Client::new(&url)?.with_ca(&c.ca)?.with_token(&c.token);
            Ok((client, Some(c)))
        }
        None => Ok((Client::new(&url)?, None)),
    }
}

fn client(conn: &Conn) -> Result<Client, ClientError> {
    connect(conn).map(|(c, _)| c)
}

fn print_json<T: Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot print JSON: {e}"),
    }
}

fn domain_path(name: &str) -> Result<String, ClientError> {
    // Names are checked by the controller; refuse here what would break the URL.
    if name.is_empty() || name.contains(['/', '?', '#', '%', ' ']) {
        return Err(ClientError::Status {
            status: 400,
            message: format!(
                "domain name {name:?} is not valid: use letters, digits, '-', '_' or '.'"
            ),
            field: Some("name".into()),
        });
    }
    Ok(format!("/v1/domains/{name}"))
}

async fn dispatch(cmd: AdminCommand) -> Result<(), ClientError> {
    match cmd {
        AdminCommand::Domain(d) => domain(d).await,
        AdminCommand::Members(m) => {
            let (register, a) = match m {
                MembersCmd::Register(a) => (true, a),
                MembersCmd::Deregister(a) => (false, a),
            };
            let spec = StaticMemberSpec {
                group: a.group,
                host: a.host,
                interface: a.interface,
                address: a.address,
            };
            let what = format!(
                "static member {} of {} in domain {}",
                spec.host, spec.group, a.domain
            );
            change_static(&a.conn, &a.domain, "members", register, &spec, &what).await
        }
        AdminCommand::Sources(s) => {
            let (register, a) = match s {
                SourcesCmd::Register(a) => (true, a),
                SourcesCmd::Deregister(a) => (false, a),
            };
            let spec = StaticSourceSpec {
                group: a.group,
                address: a.address,
                host: a.host,
                interface: a.interface,
            };
            let what = format!(
                "static source {} of {} in domain {}",
                spec.address, spec.group, a.domain
            );
            change_static(&a.conn, &a.domain, "sources", register, &spec, &what).await
        }
        AdminCommand::Traffic(t) => {
            let c = client(&t.conn)?;
            let path = format!("{}/traffic", domain_path(&t.domain)?);
            traffic::run(&c, &path, t.watch, t.json).await
        }
        AdminCommand::Token(t) => tokens::token(t).await,
        AdminCommand::Credential(c) => tokens::credential(c).await,
        AdminCommand::Agents(a) => {
            // A gateway's role: the ranges it is elected for, or standby.
            fn gateway_cell(x: &AgentInfo) -> String {
                match (&x.upstream, x.elected_for.is_empty()) {
                    (None, _) => "-".into(),
                    (Some(_), true) => "standby".into(),
                    (Some(_), false) => format!(
                        "elected {}",
                        x.elected_for
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                }
            }
            let c = client(&a.conn)?;
            let agents: Vec<AgentInfo> = c.get("/v1/agents").await?;
            if a.json {
                print_json(&agents);
            } else {
                let mut t = Table::new(&[
                    "HOST",
                    "STATE",
                    "ZONE",
                    "UNDERLAY",
                    "SUBNET",
                    "DOMAINS",
                    "MEMBERSHIPS",
                    "LAST SEEN",
                    "DATAPLANE",
                    "REPORTED DOWN BY",
                    "GATEWAY",
                ]);
                for x in &agents {
                    t.row(vec![
                        x.host.clone(),
                        x.state.clone(),
                        x.zone.clone().unwrap_or_else(|| "-".into()),
                        x.underlay.to_string(),
                        dash(&x.subnet),
                        list(&x.domains),
                        x.memberships.to_string(),
                        format!("{:.1}s ago", x.last_seen_ms as f64 / 1000.0),
                        x.dataplane.clone().unwrap_or_else(|| "-".into()),
                        list(&x.reported_down_by),
                        gateway_cell(x),
                    ]);
                }
                t.print();
            }
            Ok(())
        }
        AdminCommand::Groups(g) => {
            let c = client(&g.conn)?;
            let mut q: Vec<(String, String)> = Vec::new();
            let mut add = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    q.push((k.to_string(), v));
                }
            };
            add("domain", g.domain.clone());
            add("group", g.group.map(|x| x.to_string()));
            add("host", g.host.clone());
            add("subnet", g.subnet.map(|x| x.to_string()));
            add(
                "type",
                g.kind.map(|k| match k {
                    TypeArg::Igmp => "igmp".to_string(),
                    TypeArg::Mld => "mld".to_string(),
                    TypeArg::Static => "static".to_string(),
                    TypeArg::Upstream => "upstream".to_string(),
                }),
            );
            add("member", g.member.map(|x| x.to_string()));
            add("source", g.source.map(|x| x.to_string()));
            let mut path = "/v1/groups".to_string();
            for (i, (k, v)) in q.iter().enumerate() {
                path.push(if i == 0 { '?' } else { '&' });
                path.push_str(k);
                path.push('=');
                path.push_str(&percent_encode(v));
            }
            let rows: Vec<GroupEntry> = c.get(&path).await?;
            if g.json {
                print_json(&rows);
            } else if rows.is_empty() {
                println!("(none)");
            } else {
                println!("{}", mcgate_client::table::groups(&rows));
            }
            Ok(())
        }
    }
}

async fn domain(cmd: DomainCmd) -> Result<(), ClientError> {
    match cmd {
        DomainCmd::Create(a) => {
            let c = client(&a.conn)?;
            let mut s = IgmpSettings::default();
            if let Some(v) = a.query_interval {
                s.query_interval_ms = v;
            }
            if let Some(v) = a.query_response_interval {
                s.query_response_interval_ms = v;
            }
            if let Some(v) = a.last_member_interval {
                s.last_member_interval_ms = v;
            }
            if let Some(v) = a.robustness {
                s.robustness = v;
            }
            s.last_member_count = a.last_member_count;
            s.fast_leave = a.fast_leave;
            s.single_host_fast_leave = a.single_host_fast_leave;
            let spec = DomainSpec {
                name: a.name,
                vni: a.vni,
                igmp: match a.igmp {
                    IgmpArg::V2 => IgmpMode::V2,
                    IgmpArg::V3 => IgmpMode::V3,
                    IgmpArg::Off => IgmpMode::Off,
                },
                static_sources: a.static_sources,
                igmp_settings: s,
                tunnel: match a.tunnel {
                    TunnelArg::Wireguard => Tunnel::Wireguard,
                    TunnelArg::Vxlan => Tunnel::Vxlan,
                },
            };
            let d: Domain = c.post("/v1/domains", &spec).await?;
            if a.json {
                print_json(&d);
            } else {
                println!("created domain {} (VNI {})", d.name, d.vni);
            }
        }
        DomainCmd::Delete { name, conn } => {
            let c = client(&conn)?;
            let _: serde_json::Value = c.delete(&domain_path(&name)?, None::<&()>).await?;
            println!("deleted domain {name}");
        }
        DomainCmd::List { json, conn } => {
            let c = client(&conn)?;
            let ds: Vec<Domain> = c.get("/v1/domains").await?;
            if json {
                print_json(&ds);
            } else {
                let mut t = Table::new(&[
                    "NAME",
                    "VNI",
                    "IGMP",
                    "TUNNEL",
                    "STATIC SOURCES",
                    "SUBNETS",
                    "HOSTS",
                ]);
                for d in &ds {
                    t.row(vec![
                        d.name.clone(),
                        d.vni.to_string(),
                        igmp_text(d.igmp).into(),
                        d.tunnel.as_str().into(),
                        if d.static_sources { "on" } else { "off" }.into(),
                        list(&d.subnets),
                        list(&d.hosts),
                    ]);
                }
                t.print();
            }
        }
        DomainCmd::Show { name, json, conn } => {
            let c = client(&conn)?;
            let d: Domain = c.get(&domain_path(&name)?).await?;
            if json {
                print_json(&d);
            } else {
                let s = &d.igmp_settings;
                println!("name:            {}", d.name);
                println!("vni:             {}", d.vni);
                println!("igmp:            {}", igmp_text(d.igmp));
                println!("tunnel:          {}", d.tunnel.as_str());
                println!(
                    "static sources:  {}",
                    if d.static_sources { "on" } else { "off" }
                );
                println!("subnets:         {}", list(&d.subnets));
                println!("hosts:           {}", list(&d.hosts));
                println!(
                    "igmp timers:     query {} ms, response {} ms, last member {} ms x {}, robustness {}{}",
                    s.query_interval_ms,
                    s.query_response_interval_ms,
                    s.last_member_interval_ms,
                    s.last_member_count.unwrap_or(s.robustness),
                    s.robustness,
                    if s.fast_leave {
                        ", fast leave on every link"
                    } else if s.single_host_fast_leave {
                        ", fast leave on single-host links"
                    } else {
                        ""
                    }
                );
            }
        }
        DomainCmd::Associate(a) => assoc(a, true).await?,
        DomainCmd::Disassociate(a) => assoc(a, false).await?,
    }
    Ok(())
}

async fn assoc(a: AssocArgs, add: bool) -> Result<(), ClientError> {
    let c = client(&a.conn)?;
    let path = format!("{}/associations", domain_path(&a.name)?);
    let spec = AssociationSpec {
        subnet: a.subnet,
        host: a.host.clone(),
    };
    let what = match (&a.subnet, &a.host) {
        (Some(s), _) => format!("subnet {s}"),
        (None, Some(h)) => format!("host {h}"),
        (None, None) => String::new(),
    };
    if add {
        let _: Domain = c.post(&path, &spec).await?;
        println!("associated {what} with domain {}", a.name);
    } else {
        let _: Domain = c.delete(&path, Some(&spec)).await?;
        println!("disassociated {what} from domain {}", a.name);
    }
    Ok(())
}

fn igmp_text(m: IgmpMode) -> &'static str {
    match m {
        IgmpMode::V2 => "v2",
        IgmpMode::V3 => "v3",
        IgmpMode::Off => "off",
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("125s"), Ok(125_000));
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("10"), Ok(10_000));
        assert_eq!(parse_duration_ms("1m 30s"), Ok(90_000));
        for bad in ["x", "", "-1s", "99999999999999999999"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sentences_name_the_field() {
        let e = ClientError::Status {
            status: 400,
            message: "VNI 99999999 is out of range".into(),
            field: Some("vni".into()),
        };
        assert_eq!(sentence(&e), "VNI 99999999 is out of range (field `vni`)");
        assert_eq!(percent_encode("10.0.2.0/24"), "10.0.2.0%2F24");
        assert_eq!(percent_encode("ff3e::1"), "ff3e%3A%3A1");
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: AdminCommand,
    }

    fn parse(args: &[&str]) -> AdminCommand {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("mcgate").chain(args.iter().copied()))
            .unwrap()
            .cmd
    }

    #[test]
    fn groups_members_and_sources_take_ipv6() {
        let v6 = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let AdminCommand::Groups(g) =
            parse(&["groups", "--group", "ff3e::1", "--member", "fe80::4"])
        else {
            panic!("groups");
        };
        assert_eq!(
            (g.group, g.member),
            (Some(v6("ff3e::1")), Some(v6("fe80::4")))
        );
        let AdminCommand::Members(MembersCmd::Register(m)) = parse(&[
            "members",
            "register",
            "--domain",
            "d",
            "--group",
            "ff3e::8000:1",
            "--host",
            "h1",
            "--address",
            "2001:db8::1",
        ]) else {
            panic!("members register");
        };
        assert_eq!(
            (m.group, m.address),
            (v6("ff3e::8000:1"), Some(v6("2001:db8::1")))
        );
        let AdminCommand::Sources(SourcesCmd::Register(s)) = parse(&[
            "sources",
            "register",
            "--domain",
            "d",
            "--group",
            "232.1.1.1",
            "--address",
            "10.0.2.4",
        ]) else {
            panic!("sources register");
        };
        assert_eq!(s.group, v6("232.1.1.1"));
    }
}
