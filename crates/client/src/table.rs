//! Plain-text tables for the command line (admin commands, lab and demo output), drawn by
//! `comfy-table`: a header row and aligned columns two spaces apart, no borders, no
//! trailing spaces, never wrapped (a terminal's width does not change what scripts read).

use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement, Table, presets};
use mcgate_domain::api::{GroupEntry, LeaveMode, MemberType};
use mcgate_domain::{FilterMode, SourceFilter};

/// `rows` under `header`, one line each, without a final newline. Rows shorter than the
/// header leave their last cells empty; cells past the header's width are kept.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for r in rows {
        t.add_row(r.iter().map(String::as_str));
    }
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
        c.set_cell_alignment(CellAlignment::Left);
        c.set_constraint(ColumnConstraint::ContentWidth);
    }
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The rows of `GET /v1/groups` (`mcgate groups`, `mcgate demo`) as a table: ROLE is
/// member, source or both; TYPE igmp, static or upstream; FILTER the IGMPv3 or MLDv2 source
/// filter, as `include(a,b)` or `exclude(-)`; LEAVE how an IGMP member's leave is acted on (`fast`
/// at once, `queries` after the last-member queries); `-` where a cell has no value.
pub fn groups(rows: &[GroupEntry]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let role = match (r.member, r.source) {
                (true, true) => "member+source",
                (true, false) => "member",
                (false, true) => "source",
                (false, false) => "-",
            };
            let kind = r.member_type.or(r.source_type).map(|k| match k {
                MemberType::Igmp => "igmp",
                MemberType::Mld => "mld",
                MemberType::Static => "static",
                MemberType::Upstream => "upstream",
            });
            vec![
                r.domain.clone(),
                r.group.to_string(),
                if r.host.is_empty() {
                    "-".into()
                } else {
                    r.host.clone()
                },
                dash(&r.subnet),
                dash(&r.interface),
                dash(&r.address),
                role.into(),
                kind.unwrap_or("-").into(),
                r.source_filter
                    .as_ref()
                    .map(filter_text)
                    .unwrap_or_else(|| "-".into()),
                match r.leave {
                    Some(LeaveMode::Fast) => "fast",
                    Some(LeaveMode::Queries) => "queries",
                    None => "-",
                }
                .into(),
            ]
        })
        .collect();
    render(
        &[
            "DOMAIN",
            "GROUP",
            "HOST",
            "SUBNET",
            "INTERFACE",
            "ADDRESS",
            "ROLE",
            "TYPE",
            "FILTER",
            "LEAVE",
        ],
        &cells,
    )
}

/// The value, or `-` for none.
pub fn dash<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_else(|| "-".into())
}

/// The items joined by commas, or `-` for none.
pub fn list<T: ToString>(v: &[T]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
    }
}

/// A source filter as `include(a,b)`, or `exclude(-)` for any source.
fn filter_text(f: &SourceFilter<std::net::IpAddr>) -> String {
    let mode = match f.mode {
        FilterMode::Include => "include",
        FilterMode::Exclude => "exclude",
    };
    format!("{mode}({})", list(&f.sources.iter().collect::<Vec<_>>()))
}

#[cfg(test)]
mod tests {
    use super::{groups, render};
    use mcgate_domain::api::{GroupEntry, MemberType};

    #[test]
    fn columns_align_two_spaces_apart_without_trailing_space() {
        let t = render(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y");
        let t = render(
            &["HOST", "STATE", "NOTE"],
            &[
                vec!["h1".into(), "up".into(), "".into()],
                vec!["host-two".into(), "expired".into(), "lease".into()],
            ],
        );
        assert_eq!(
            t,
            "HOST      STATE    NOTE\nh1        up\nhost-two  expired  lease"
        );
    }

    #[test]
    fn a_header_alone_and_wide_unicode_cells() {
        assert_eq!(render(&["A", "B"], &[]), "A  B");
        let t = render(&["N", "X"], &[vec!["ü".into(), "1".into()]]);
        assert_eq!(t, "N  X\nü  1");
    }

    #[test]
    fn group_rows_name_role_type_and_filter() {
        let row = GroupEntry {
            domain: "d".into(),
            group: [233, 252, 0, 5].into(),
            host: "h1".into(),
            subnet: None,
            interface: Some("tk1".into()),
            address: Some([10, 0, 0, 2].into()),
            member: true,
            source: true,
            member_type: Some(MemberType::Igmp),
            source_type: None,
            source_filter: Some(mcgate_domain::SourceFilter::any_source()),
            leave: Some(mcgate_domain::api::LeaveMode::Fast),
        };
        let t = groups(&[row]);
        let mut lines = t.lines();
        assert!(lines.next().unwrap().starts_with("DOMAIN  GROUP"));
        let cells: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "d",
                "233.252.0.5",
                "h1",
                "-",
                "tk1",
                "10.0.0.2",
                "member+source",
                "igmp",
                "exclude(-)",
                "fast"
            ]
        );
    }

    #[test]
    fn ipv6_rows_print_their_addresses() {
        let v6 = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let row = GroupEntry {
            domain: "d".into(),
            group: v6("ff3e::8000:5"),
            host: "h1".into(),
            subnet: None,
            interface: Some("tk1".into()),
            address: Some(v6("fe80::4")),
            member: true,
            source: false,
            member_type: Some(MemberType::Igmp),
            source_type: None,
            source_filter: Some(mcgate_domain::SourceFilter::include([
                v6("2001:db8::9"),
                v6("2001:db8::a"),
            ])),
            leave: Some(mcgate_domain::api::LeaveMode::Queries),
        };
        let t = groups(&[row]);
        let cells: Vec<&str> = t.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "d",
                "ff3e::8000:5",
                "h1",
                "-",
                "tk1",
                "fe80::4",
                "member",
                "igmp",
                "include(2001:db8::9,2001:db8::a)",
                "queries"
            ]
        );
    }

    #[test]
    fn upstream_rows_show_the_gateway_and_the_source() {
        let row = GroupEntry::upstream(
            "d",
            [233, 252, 0, 7].into(),
            "gw",
            "up0",
            Some([192, 0, 2, 1].into()),
        );
        let t = groups(&[row]);
        let cells: Vec<&str> = t.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "d",
                "233.252.0.7",
                "gw",
                "-",
                "up0",
                "192.0.2.1",
                "source",
                "upstream",
                "-",
                "-"
            ]
        );
    }
}
