//! The admin verbs on a domain's configuration: create and delete, associations,
//! static members and sources.

use std::collections::BTreeSet;

use ipnet::Ipv4Net;

use super::*;
use crate::api::*;
use crate::validate::{self, ModelError};

impl Model {
    // ---- domains ---------------------------------------------------------------------

    /// `POST /v1/domains`.
    pub fn create_domain(&mut self, spec: DomainSpec) -> Result<Domain, ModelError> {
        validate::domain_name("name", &spec.name)?;
        validate::igmp_settings(spec.igmp, &spec.igmp_settings)?;
        if self.domains.contains_key(&spec.name) {
            return Err(ModelError::conflict(
                Some("name"),
                format!("a domain named {:?} already exists", spec.name),
            ));
        }
        let vni = match spec.vni {
            Some(v) => {
                validate::vni("vni", v)?;
                if let Some(other) = self.domains.values().find(|r| r.domain.vni == v) {
                    return Err(ModelError::conflict(
                        Some("vni"),
                        format!("VNI {v} is already used by domain {:?}", other.domain.name),
                    ));
                }
                v
            }
            None => {
                let used: BTreeSet<u32> = self.domains.values().map(|r| r.domain.vni).collect();
                (1..=validate::MAX_VNI)
                    .find(|v| !used.contains(v))
                    .ok_or_else(|| ModelError::conflict(Some("vni"), "every VNI is in use"))?
            }
        };
        let domain = Domain {
            name: spec.name.clone(),
            vni,
            igmp: spec.igmp,
            static_sources: spec.static_sources,
            igmp_settings: spec.igmp_settings,
            subnets: Vec::new(),
            hosts: Vec::new(),
            tunnel: spec.tunnel,
        };
        self.domains.insert(
            spec.name,
            DomainRecord {
                domain: domain.clone(),
                static_members: Vec::new(),
                static_sources: Vec::new(),
            },
        );
        Ok(domain)
    }

    /// `DELETE /v1/domains/{name}`: the domain's live hosts get a fresh snapshot.
    pub fn delete_domain(&mut self, name: &str) -> Result<Vec<Effect>, ModelError> {
        self.domain(name)?;
        let hosts = self.live_hosts_of(name);
        self.domains.remove(name);
        Ok(hosts
            .into_iter()
            .map(|host| Effect::Resnapshot { host })
            .collect())
    }

    /// `POST /v1/domains/{name}/associations`.
    pub fn associate(
        &mut self,
        name: &str,
        spec: &AssociationSpec,
    ) -> Result<Vec<Effect>, ModelError> {
        self.domain(name)?;
        let target = association_target(spec)?;
        match &target {
            Target::Subnet(net) => {
                for r in self.domains.values() {
                    if let Some(s) = r.domain.subnets.iter().find(|s| overlaps(s, net)) {
                        return Err(ModelError::conflict(
                            Some("subnet"),
                            if r.domain.name == name && s == net {
                                format!("subnet {net} is already associated with domain {name:?}")
                            } else {
                                format!(
                                    "subnet {net} overlaps {s} of domain {:?}: a subnet belongs to one domain only",
                                    r.domain.name
                                )
                            },
                        ));
                    }
                }
            }
            Target::Host(h) => {
                if self.domains[name].domain.hosts.contains(h) {
                    return Err(ModelError::conflict(
                        Some("host"),
                        format!("host {h:?} is already associated with domain {name:?}"),
                    ));
                }
            }
        }
        Ok(self.with_all_hosts(|m| {
            let d = &mut m.domains.get_mut(name).expect("checked above").domain;
            match target {
                Target::Subnet(net) => {
                    d.subnets.push(net);
                    d.subnets.sort();
                }
                Target::Host(h) => {
                    d.hosts.push(h);
                    d.hosts.sort();
                }
            }
        }))
    }

    /// `DELETE /v1/domains/{name}/associations`.
    pub fn disassociate(
        &mut self,
        name: &str,
        spec: &AssociationSpec,
    ) -> Result<Vec<Effect>, ModelError> {
        let d = &self.domain(name)?.domain;
        let target = association_target(spec)?;
        let present = match &target {
            Target::Subnet(net) => d.subnets.contains(net),
            Target::Host(h) => d.hosts.contains(h),
        };
        if !present {
            let (field, what) = match &target {
                Target::Subnet(net) => ("subnet", format!("subnet {net}")),
                Target::Host(h) => ("host", format!("host {h:?}")),
            };
            return Err(ModelError::not_found(
                Some(field),
                format!("{what} is not associated with domain {name:?}"),
            ));
        }
        Ok(self.with_all_hosts(|m| {
            let d = &mut m.domains.get_mut(name).expect("checked above").domain;
            match target {
                Target::Subnet(net) => d.subnets.retain(|s| *s != net),
                Target::Host(h) => d.hosts.retain(|x| *x != h),
            }
        }))
    }

    /// `POST /v1/domains/{name}/members`.
    pub fn add_static_member(
        &mut self,
        name: &str,
        spec: StaticMemberSpec,
    ) -> Result<Vec<Effect>, ModelError> {
        self.domain(name)?;
        check_static_member(&spec)?;
        let rec = &self.domains[name];
        if rec.static_members.iter().any(|m| same_member(m, &spec)) {
            return Err(ModelError::conflict(
                Some("group"),
                format!(
                    "host {:?} is already a static member of {} in domain {name:?}",
                    spec.host, spec.group
                ),
            ));
        }
        let host = spec.host.clone();
        let mut effects = vec![Effect::Delta {
            domain: name.to_string(),
            change: Change::StaticMember {
                domain: name.to_string(),
                member: spec.clone(),
                present: true,
            },
        }];
        effects.extend(self.with_hosts(&[host], |m| {
            m.domains
                .get_mut(name)
                .expect("checked above")
                .static_members
                .push(spec)
        }));
        Ok(effects)
    }

    /// `DELETE /v1/domains/{name}/members`: matches on group, host and interface.
    pub fn remove_static_member(
        &mut self,
        name: &str,
        spec: &StaticMemberSpec,
    ) -> Result<Vec<Effect>, ModelError> {
        let rec = self.domain(name)?;
        validate::group("group", spec.group)?;
        let Some(existing) = rec
            .static_members
            .iter()
            .find(|m| same_member(m, spec))
            .cloned()
        else {
            return Err(ModelError::not_found(
                Some("group"),
                format!(
                    "host {:?} is not a static member of {} in domain {name:?}",
                    spec.host, spec.group
                ),
            ));
        };
        let mut effects = self.with_hosts(std::slice::from_ref(&spec.host), |m| {
            m.domains
                .get_mut(name)
                .expect("checked above")
                .static_members
                .retain(|x| !same_member(x, spec))
        });
        effects.push(Effect::Delta {
            domain: name.to_string(),
            change: Change::StaticMember {
                domain: name.to_string(),
                member: existing,
                present: false,
            },
        });
        Ok(effects)
    }

    /// `POST /v1/domains/{name}/sources`.
    pub fn add_static_source(
        &mut self,
        name: &str,
        spec: StaticSourceSpec,
    ) -> Result<Vec<Effect>, ModelError> {
        self.domain(name)?;
        validate::routable_group("group", spec.group)?;
        validate::unicast("address", spec.address)?;
        validate::same_family("address", spec.group, spec.address)?;
        if let Some(h) = &spec.host {
            validate::host_name("host", h)?;
        }
        if let Some(i) = &spec.interface {
            validate::link_name("interface", i)?;
        }
        let rec = self.domains.get_mut(name).expect("checked above");
        if rec
            .static_sources
            .iter()
            .any(|s| s.group == spec.group && s.address == spec.address)
        {
            return Err(ModelError::conflict(
                Some("address"),
                format!(
                    "{} is already a static source of {} in domain {name:?}",
                    spec.address, spec.group
                ),
            ));
        }
        rec.static_sources.push(spec.clone());
        Ok(vec![Effect::Delta {
            domain: name.to_string(),
            change: Change::StaticSource {
                domain: name.to_string(),
                source: spec,
                present: true,
            },
        }])
    }

    /// `DELETE /v1/domains/{name}/sources`: matches on group and address.
    pub fn remove_static_source(
        &mut self,
        name: &str,
        spec: &StaticSourceSpec,
    ) -> Result<Vec<Effect>, ModelError> {
        self.domain(name)?;
        validate::group("group", spec.group)?;
        let rec = self.domains.get_mut(name).expect("checked above");
        let Some(pos) = rec
            .static_sources
            .iter()
            .position(|s| s.group == spec.group && s.address == spec.address)
        else {
            return Err(ModelError::not_found(
                Some("address"),
                format!(
                    "{} is not a static source of {} in domain {name:?}",
                    spec.address, spec.group
                ),
            ));
        };
        let source = rec.static_sources.remove(pos);
        Ok(vec![Effect::Delta {
            domain: name.to_string(),
            change: Change::StaticSource {
                domain: name.to_string(),
                source,
                present: false,
            },
        }])
    }
}

fn check_static_member(spec: &StaticMemberSpec) -> Result<(), ModelError> {
    validate::routable_group("group", spec.group)?;
    validate::host_name("host", &spec.host)?;
    if let Some(i) = &spec.interface {
        validate::link_name("interface", i)?;
    }
    if let Some(a) = spec.address {
        validate::unicast("address", a)?;
        validate::same_family("address", spec.group, a)?;
    }
    Ok(())
}

/// Static members are identified by group, host and interface; the address is a label.
fn same_member(a: &StaticMemberSpec, b: &StaticMemberSpec) -> bool {
    a.group == b.group && a.host == b.host && a.interface == b.interface
}

enum Target {
    Subnet(Ipv4Net),
    Host(String),
}

fn association_target(spec: &AssociationSpec) -> Result<Target, ModelError> {
    match (&spec.subnet, &spec.host) {
        (Some(net), None) => {
            if net.trunc() != *net {
                return Err(ModelError::invalid(
                    "subnet",
                    format!("{net} has host bits set; did you mean {}?", net.trunc()),
                ));
            }
            Ok(Target::Subnet(*net))
        }
        (None, Some(h)) => {
            validate::host_name("host", h)?;
            Ok(Target::Host(h.clone()))
        }
        _ => Err(ModelError::invalid(
            "subnet",
            "give exactly one of `subnet` and `host`",
        )),
    }
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}
