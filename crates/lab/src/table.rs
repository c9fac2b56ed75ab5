//! Plain-text tables with aligned columns, drawn by the CLI's one table helper
//! (`mcgate_client::table`).

/// Renders rows under a header, columns separated by two spaces. A row has exactly as
/// many cells as the header has names: the types say so, so no value can sit under
/// another column's name.
pub fn render<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.to_vec()).collect();
    mcgate_client::table::render(&header, &rows)
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns() {
        let t = super::render(["A", "BB"], &[["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y");
    }
}
