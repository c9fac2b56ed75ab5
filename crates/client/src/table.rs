//! Plain-text tables for the command line (admin commands, lab and demo output), drawn by
//! `comfy-table`: a header row and aligned columns two spaces apart, no borders, no
//! trailing spaces, never wrapped (a terminal's width does not change what scripts read).

use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement, Table, presets};

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

#[cfg(test)]
mod tests {
    use super::render;

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
}
