//! The membership a link has for one group: a filter mode and a source list
//! (RFC 3376 section 3.2).

use core::net::Ipv4Addr;
use std::collections::BTreeSet;

/// INCLUDE or EXCLUDE (RFC 3376 section 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterMode {
    /// Only the listed sources are wanted.
    Include,
    /// Every source but the listed ones is wanted.
    Exclude,
}

/// A filter mode and its source list. `EXCLUDE {}` is plain any-source membership (*,G).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SourceFilter {
    /// The filter mode.
    pub mode: FilterMode,
    /// The source list, sorted and without duplicates.
    pub sources: BTreeSet<Ipv4Addr>,
}

impl SourceFilter {
    /// Any-source membership: EXCLUDE {}.
    pub fn any_source() -> Self {
        Self {
            mode: FilterMode::Exclude,
            sources: BTreeSet::new(),
        }
    }

    /// INCLUDE with the given sources.
    pub fn include(sources: impl IntoIterator<Item = Ipv4Addr>) -> Self {
        Self {
            mode: FilterMode::Include,
            sources: sources.into_iter().collect(),
        }
    }

    /// EXCLUDE with the given sources.
    pub fn exclude(sources: impl IntoIterator<Item = Ipv4Addr>) -> Self {
        Self {
            mode: FilterMode::Exclude,
            sources: sources.into_iter().collect(),
        }
    }

    /// Whether traffic from `source` passes this filter.
    pub fn allows(&self, source: Ipv4Addr) -> bool {
        match self.mode {
            FilterMode::Include => self.sources.contains(&source),
            FilterMode::Exclude => !self.sources.contains(&source),
        }
    }

    /// Whether this filter lets nothing through (INCLUDE {}), which means no membership.
    pub fn is_empty(&self) -> bool {
        self.mode == FilterMode::Include && self.sources.is_empty()
    }

    /// The union of two memberships on one host or link, as RFC 3376 section 3.2 merges
    /// socket states into an interface state: any EXCLUDE makes the result EXCLUDE of the
    /// sources excluded by every EXCLUDE and included by none.
    pub fn merge(&self, other: &SourceFilter) -> SourceFilter {
        use FilterMode::*;
        match (self.mode, other.mode) {
            (Include, Include) => {
                SourceFilter::include(self.sources.union(&other.sources).copied())
            }
            (Exclude, Exclude) => {
                SourceFilter::exclude(self.sources.intersection(&other.sources).copied())
            }
            (Exclude, Include) => {
                SourceFilter::exclude(self.sources.difference(&other.sources).copied())
            }
            (Include, Exclude) => {
                SourceFilter::exclude(other.sources.difference(&self.sources).copied())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, n)
    }

    #[test]
    fn merge_follows_rfc3376_section_3_2() {
        let inc = SourceFilter::include([a(1), a(2)]);
        let exc = SourceFilter::exclude([a(2), a(3)]);
        assert_eq!(inc.merge(&exc), SourceFilter::exclude([a(3)]));
        assert_eq!(exc.merge(&inc), SourceFilter::exclude([a(3)]));
        assert_eq!(
            inc.merge(&SourceFilter::include([a(4)])),
            SourceFilter::include([a(1), a(2), a(4)])
        );
        assert_eq!(
            exc.merge(&SourceFilter::exclude([a(3), a(4)])),
            SourceFilter::exclude([a(3)])
        );
        assert!(exc.allows(a(1)) && !exc.allows(a(2)));
        assert!(inc.allows(a(1)) && !inc.allows(a(3)));
    }
}
