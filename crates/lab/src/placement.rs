//! Task placement, like ECS's spread strategy over `availability-zone`, then instance:
//! each task of a service goes to the zone holding the fewest of that service's tasks,
//! then to the host there holding the fewest; ties go to the zone or host with fewer
//! tasks overall, then to file order. A host never holds more than `max_tasks`.
//!
//! Placement runs before anything is built, so a service that does not fit fails the
//! whole `lab up` with a sentence saying how much room is left (the reference stack just
//! hangs in CREATE_IN_PROGRESS).

use crate::topology::Topology;

/// One placed task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// `<service>-<n>`.
    pub name: String,
    /// Index into [`Topology::services`].
    pub service: usize,
    /// Index into [`Topology::hosts`].
    pub host: usize,
}

/// A service that does not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{file}:{line}: service {service} asks for {wanted} task(s) but only {fit} fit{pin}: {left} task slot(s) are left{detail}; raise max_tasks on a host, add a host, or lower count"
)]
pub struct CapacityError {
    /// Topology file.
    pub file: String,
    /// Line of the service.
    pub line: usize,
    /// The service.
    pub service: String,
    /// Its count.
    pub wanted: u32,
    /// How many of its tasks fit.
    pub fit: u32,
    /// Free task slots on the hosts it may use, before placing it.
    pub left: u32,
    /// " on host X" / " in zone Z" when pinned.
    pub pin: String,
    /// Per host, " (host-a 1, host-b 0)".
    pub detail: String,
}

/// Places every task of every service, in file order.
pub fn place(topo: &Topology) -> Result<Vec<Placed>, CapacityError> {
    let mut used = vec![0u32; topo.hosts.len()];
    let mut placed = Vec::new();
    for (si, svc) in topo.services.iter().enumerate() {
        let eligible: Vec<usize> = (0..topo.hosts.len())
            .filter(|&h| svc.host.is_none_or(|p| p == h))
            .filter(|&h| svc.zone.as_deref().is_none_or(|z| topo.host_zone(h) == z))
            .collect();
        let free = |used: &[u32], h: usize| topo.hosts[h].max_tasks.saturating_sub(used[h]);
        let left: u32 = eligible.iter().map(|&h| free(&used, h)).sum();
        let detail = if eligible.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                eligible
                    .iter()
                    .map(|&h| format!("{} {}", topo.hosts[h].name, free(&used, h)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let mut svc_on_host = vec![0u32; topo.hosts.len()];
        for n in 1..=svc.count {
            let candidates: Vec<usize> = eligible
                .iter()
                .copied()
                .filter(|&h| free(&used, h) > 0)
                .collect();
            if candidates.is_empty() {
                let pin = match (&svc.host, &svc.zone) {
                    (Some(h), _) => format!(" on host {}", topo.hosts[*h].name),
                    (None, Some(z)) => format!(" in zone {z}"),
                    _ => String::new(),
                };
                return Err(CapacityError {
                    file: topo.file.clone(),
                    line: svc.line,
                    service: svc.name.clone(),
                    wanted: svc.count,
                    fit: n - 1,
                    left,
                    pin,
                    detail,
                });
            }
            // Zones in order of first appearance among the hosts.
            let mut zones: Vec<&str> = Vec::new();
            for &h in &candidates {
                let z = topo.host_zone(h);
                if !zones.contains(&z) {
                    zones.push(z);
                }
            }
            let zone_key = |z: &str| {
                let in_zone = |h: &usize| topo.host_zone(*h) == z;
                let svc_n: u32 = (0..topo.hosts.len())
                    .filter(in_zone)
                    .map(|h| svc_on_host[h])
                    .sum();
                let all_n: u32 = (0..topo.hosts.len()).filter(in_zone).map(|h| used[h]).sum();
                (svc_n, all_n)
            };
            let mut best_zone = zones[0];
            for &z in &zones[1..] {
                if zone_key(z) < zone_key(best_zone) {
                    best_zone = z;
                }
            }
            let mut best: Option<usize> = None;
            for &h in candidates
                .iter()
                .filter(|&&h| topo.host_zone(h) == best_zone)
            {
                let key = (svc_on_host[h], used[h]);
                if best.is_none_or(|b| key < (svc_on_host[b], used[b])) {
                    best = Some(h);
                }
            }
            let Some(h) = best else { continue };
            used[h] += 1;
            svc_on_host[h] += 1;
            placed.push(Placed {
                name: format!("{}-{n}", svc.name),
                service: si,
                host: h,
            });
        }
    }
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{REFERENCE_TOPOLOGY, Topology};

    fn hosts_of(topo: &Topology, p: &[Placed]) -> Vec<(String, String)> {
        p.iter()
            .map(|t| (t.name.clone(), topo.hosts[t.host].name.clone()))
            .collect()
    }

    #[test]
    fn reference_spreads_receivers_across_zones() {
        let t = Topology::parse("r.toml", REFERENCE_TOPOLOGY).unwrap();
        let p = place(&t).unwrap();
        assert_eq!(
            hosts_of(&t, &p),
            vec![
                ("receiver-1".into(), "host-a".into()),
                ("receiver-2".into(), "host-b".into()),
                ("sender-1".into(), "host-a".into()),
            ]
        );
    }

    fn four_hosts(extra: &str) -> Topology {
        let mut src = String::from(
            "name = \"t\"\n[vpc]\ncidr = \"10.0.0.0/16\"\n\
             [[subnets]]\nname = \"a\"\ncidr = \"10.0.1.0/24\"\nzone = \"za\"\n\
             [[subnets]]\nname = \"b\"\ncidr = \"10.0.2.0/24\"\nzone = \"zb\"\n",
        );
        for (h, s) in [("h1", "a"), ("h2", "a"), ("h3", "b"), ("h4", "b")] {
            src.push_str(&format!(
                "[[hosts]]\nname = \"{h}\"\nsubnet = \"{s}\"\nmax_tasks = 2\n"
            ));
        }
        src.push_str(extra);
        Topology::parse("f.toml", &src).unwrap()
    }

    #[test]
    fn spreads_across_zones_then_hosts() {
        let t = four_hosts("[[services]]\nname = \"r\"\ncount = 4\ncommand = [\"x\"]\n");
        let p = place(&t).unwrap();
        let hs: Vec<String> = hosts_of(&t, &p).into_iter().map(|x| x.1).collect();
        assert_eq!(hs, ["h1", "h3", "h2", "h4"]);
    }

    #[test]
    fn never_past_max_tasks_and_pins_hold() {
        let t = four_hosts(
            "[[services]]\nname = \"p\"\ncount = 2\ncommand = [\"x\"]\nhost = \"h4\"\n\
             [[services]]\nname = \"r\"\ncount = 6\ncommand = [\"x\"]\n",
        );
        let p = place(&t).unwrap();
        let mut per = std::collections::BTreeMap::new();
        for (_, h) in hosts_of(&t, &p) {
            *per.entry(h).or_insert(0) += 1;
        }
        assert!(per.values().all(|&n| n <= 2), "{per:?}");
        assert_eq!(p.iter().filter(|x| x.host == 3).count(), 2);
        assert!(p[..2].iter().all(|x| x.host == 3));
    }

    #[test]
    fn capacity_error_says_what_fits() {
        let t = four_hosts(
            "[[services]]\nname = \"a\"\ncount = 5\ncommand = [\"x\"]\n\
             [[services]]\nname = \"big\"\ncount = 5\ncommand = [\"x\"]\n",
        );
        let e = place(&t).unwrap_err();
        assert_eq!(e.service, "big");
        assert_eq!(e.fit, 3);
        assert_eq!(e.left, 3);
        let s = e.to_string();
        assert!(
            s.contains("service big asks for 5 task(s) but only 3 fit"),
            "{s}"
        );
        assert!(s.contains("h1 0"), "{s}");
        assert!(s.starts_with("f.toml:32:"), "{s}");
    }

    #[test]
    fn pinned_zone_capacity() {
        let t =
            four_hosts("[[services]]\nname = \"z\"\ncount = 5\ncommand = [\"x\"]\nzone = \"zb\"\n");
        let e = place(&t).unwrap_err();
        assert_eq!((e.fit, e.left), (4, 4));
        assert!(e.to_string().contains("in zone zb"), "{e}");
    }
}
