//! `mcgate controller status|export|import`: a controller's store and role, and moving
//! domains' configuration between stores.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use mcgate_domain::api::Health;

use super::{Conn, Table, client, print_json, sentence};
use crate::StoreArgs;
use crate::migrate::{self, Export};

/// `mcgate controller <command>`.
#[derive(Debug, clap::Subcommand)]
pub enum ControllerCmd {
    /// Show a controller's store, role, leader, writability and the etcd members it sees.
    Status {
        /// Print JSON (the `/v1/healthz` answer) instead of a summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Write domains' configuration (settings, associations, static members and sources)
    /// as JSON, to move it to another store. An embedded store must not be in use: stop its
    /// controller first.
    Export {
        /// Only this domain; repeat as needed (default: every domain).
        #[arg(long = "domain", value_name = "NAME")]
        domains: Vec<String>,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Read an export into a store. Running etcd replicas apply it at once; an embedded
    /// store must not be in use.
    Import {
        /// The export file (`-`: standard input).
        file: PathBuf,
        /// Overwrite domains that already exist in the target store.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs a `mcgate controller` command.
pub fn run_controller_cmd(cmd: ControllerCmd) -> ExitCode {
    match cmd {
        ControllerCmd::Status { json, conn } => crate::block_on(
            tokio::runtime::Builder::new_current_thread(),
            status(json, conn),
            |e| sentence(&e),
        ),
        ControllerCmd::Export {
            domains,
            output,
            store,
        } => crate::block_on(
            tokio::runtime::Builder::new_current_thread(),
            export(domains, output, store),
            |e| e,
        ),
        ControllerCmd::Import {
            file,
            replace,
            store,
        } => crate::block_on(
            tokio::runtime::Builder::new_current_thread(),
            import(file, replace, store),
            |e| e,
        ),
    }
}

async fn status(json: bool, conn: Conn) -> Result<(), mcgate_client::ClientError> {
    let h: Health = client(&conn)?.get("/v1/healthz").await?;
    if json {
        print_json(&h);
        return Ok(());
    }
    print!("{}", summary(&h));
    Ok(())
}

fn or_dash(v: Option<&str>) -> String {
    v.unwrap_or("-").to_string()
}

/// The status as people read it.
pub(crate) fn summary(h: &Health) -> String {
    let mut t: Vec<(&str, String)> = Vec::new();
    let role = match (&h.replica, &h.role) {
        (Some(r), Some(role)) => format!("{r} ({role})"),
        (None, role) => or_dash(role.as_deref()),
        (Some(r), None) => r.clone(),
    };
    t.push(("status", h.status.clone()));
    t.push(("store", or_dash(h.store.as_deref())));
    t.push(("replica", role));
    if h.store.as_deref() == Some("etcd") {
        t.push(("leader", or_dash(h.leader.as_deref())));
        let writable = match h.writable {
            Some(true) => "yes",
            Some(false) => "no: etcd has no quorum; reads and forwarding go on",
            None => "-",
        };
        t.push(("writable", writable.into()));
        t.push((
            "watch",
            format!(
                "applied etcd revision {}, confirmed {} ago",
                h.applied_revision.map_or("-".into(), |r| r.to_string()),
                h.watch_lag_ms
                    .map_or("never".into(), |ms| format!("{:.1}s", ms as f64 / 1_000.0))
            ),
        ));
    }
    t.push((
        "serving",
        format!(
            "{} domains, {} agents up, {} streams",
            h.domains, h.agents_up, h.streams
        ),
    ));
    let mut out = String::new();
    for (k, v) in t {
        out.push_str(&format!("{k:<9} {v}\n"));
    }
    if let Some(members) = &h.etcd_members {
        let mut m = Table::new(&["ETCD MEMBER", "ID", "CLIENT URLS", "STATE", "RAFT LEADER"]);
        for x in members {
            m.row(vec![
                x.name.clone(),
                x.id.clone(),
                x.client_urls.join(","),
                if x.reachable { "up" } else { "unreachable" }.into(),
                if x.leader { "yes" } else { "" }.into(),
            ]);
        }
        out.push('\n');
        out.push_str(&m.render());
    }
    out
}

async fn export(
    only: Vec<String>,
    output: Option<PathBuf>,
    store: StoreArgs,
) -> Result<(), String> {
    let mut domains = migrate::read(&store).await?;
    if !only.is_empty() {
        for name in &only {
            if !domains.iter().any(|d| &d.domain.name == name) {
                return Err(format!("the store has no domain named {name:?}"));
            }
        }
        domains.retain(|d| only.contains(&d.domain.name));
    }
    let n = domains.len();
    let text = serde_json::to_string_pretty(&Export {
        version: 1,
        domains,
    })
    .map_err(|e| e.to_string())?;
    match output {
        Some(p) => {
            std::fs::write(&p, format!("{text}\n"))
                .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
            eprintln!("exported {n} domain(s) to {}", p.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{text}").map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

async fn import(file: PathBuf, replace: bool, store: StoreArgs) -> Result<(), String> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| e.to_string())?
    } else {
        std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?
    };
    let doc: Export = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not an mcgate export: {e}", file.display()))?;
    if doc.version != 1 {
        return Err(format!(
            "export version {} is not one this mcgate reads (1)",
            doc.version
        ));
    }
    migrate::write(&store, &doc.domains, replace).await?;
    eprintln!("imported {} domain(s)", doc.domains.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcgate_domain::api::EtcdMember;

    #[test]
    fn the_summary_names_role_leader_and_members() {
        let h = Health {
            status: "degraded".into(),
            revision: 1,
            domains: 2,
            agents_up: 3,
            streams: 3,
            stream_overflows: 0,
            store: Some("etcd".into()),
            role: Some("follower".into()),
            replica: Some("c2".into()),
            leader: Some("c1".into()),
            writable: Some(false),
            applied_revision: Some(77),
            watch_lag_ms: Some(300),
            etcd_members: Some(vec![EtcdMember {
                name: "m1".into(),
                id: "8e9e05c52164694d".into(),
                client_urls: vec!["http://10.0.0.1:2379".into()],
                reachable: false,
                leader: false,
            }]),
        };
        let s = summary(&h);
        for want in [
            "c2 (follower)",
            "leader    c1",
            "writable  no: etcd has no quorum",
            "revision 77, confirmed 0.3s ago",
            "m1",
            "unreachable",
        ] {
            assert!(s.contains(want), "{want:?} missing in:\n{s}");
        }
    }
}
