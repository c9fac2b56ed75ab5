//! What a replica tells `/v1/healthz` and `mcgate controller status`: etcd's members
//! and which of them answer, who leads, whether writes can succeed. Refreshed every
//! second through the client that needs no quorum, so it keeps answering without one.

use std::sync::Arc;
use std::time::Duration;

use mcgate_domain::api::EtcdMember;

use super::leader::election;
use super::replica::Replica;

const CHECK: Duration = Duration::from_millis(800);

/// Refreshes [`Replica::seen`]; forever.
pub(crate) async fn status_loop(rep: Arc<Replica>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let members = members(&rep).await;
        let leader = leader(&rep).await;
        let quorum = members.iter().any(|m| m.leader);
        if !members.is_empty() {
            rep.set_writable(quorum);
        }
        let mut seen = rep.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.members = members;
        seen.leader = leader;
    }
}

/// The members and how each answers. Without quorum the member list may not come;
/// then the members last listed are probed again by their URLs.
async fn members(rep: &Replica) -> Vec<EtcdMember> {
    let mut loose = rep.loose();
    let listed: Option<Vec<(String, u64, Vec<String>)>> =
        match tokio::time::timeout(CHECK, loose.member_list()).await {
            Ok(Ok(list)) => Some(
                list.members()
                    .iter()
                    .map(|m| (m.name().to_string(), m.id(), m.client_urls().to_vec()))
                    .collect(),
            ),
            _ => None,
        };
    let known = match listed {
        Some(l) => l,
        None => {
            let seen = rep.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.members
                .iter()
                .map(|m| {
                    let id = u64::from_str_radix(&m.id, 16).unwrap_or(0);
                    (m.name.clone(), id, m.client_urls.clone())
                })
                .collect()
        }
    };
    let mut out = Vec::new();
    for (name, id, urls) in known {
        let (reachable, leader) = match urls.first() {
            Some(url) => member_status(rep, url, id).await,
            None => (false, false),
        };
        out.push(EtcdMember {
            name,
            id: format!("{id:x}"),
            client_urls: urls,
            reachable,
            leader,
        });
    }
    out
}

/// Whether the member at `url` answers, and whether it is the raft leader.
async fn member_status(rep: &Replica, url: &str, id: u64) -> (bool, bool) {
    let mut clients = rep.members.lock().await;
    if !clients.contains_key(url) {
        match rep.opts.connect_one(url).await {
            Ok(c) => {
                clients.insert(url.to_string(), c);
            }
            Err(_) => return (false, false),
        }
    }
    let Some(c) = clients.get_mut(url) else {
        return (false, false);
    };
    match tokio::time::timeout(CHECK, c.status()).await {
        Ok(Ok(s)) => (true, s.leader() == id && s.leader() != 0),
        _ => (false, false),
    }
}

/// The leading replica's name.
async fn leader(rep: &Replica) -> Option<String> {
    let mut loose = rep.loose();
    let r = tokio::time::timeout(CHECK, loose.leader(election(rep)))
        .await
        .ok()?
        .ok()?;
    let kv = r.kv()?;
    String::from_utf8(kv.value().to_vec()).ok()
}
