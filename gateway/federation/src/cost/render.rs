//! Text form of an estimate, for `portico cost`: the total, then one line per field
//! (indented by depth) with its cost for one instance of its parent, the list size
//! applied to it, and the coordinate it was priced as.

use super::CostEstimate;
use std::fmt::Write;

/// Renders an estimate:
///
/// ```text
/// estimated cost: 151
///         cost  field          size  priced as
///          151  me                   Query.me
///          150    posts              User.posts
///          100      edges      ×100  PostConnection.edges
/// ```
pub fn render_breakdown(estimate: &CostEstimate) -> String {
    let mut out = format!("estimated cost: {}\n", number(estimate.total));
    if estimate.breakdown.is_empty() {
        return out;
    }
    let rows: Vec<(String, String, String, &str)> = estimate
        .breakdown
        .iter()
        .map(|line| {
            let depth = line.path.matches('.').count();
            let key = line.path.rsplit('.').next().unwrap_or(&line.path);
            let size = if line.multiplier == 1.0 {
                String::new()
            } else {
                format!("×{}", number(line.multiplier))
            };
            (
                number(line.cost),
                format!("{}{key}", "  ".repeat(depth)),
                size,
                line.coordinate.as_str(),
            )
        })
        .collect();
    let cost_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(4);
    let field_width = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let size_width = rows
        .iter()
        .map(|r| r.2.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let _ = writeln!(
        out,
        "{:>cost_width$}  {:<field_width$}  {:>size_width$}  priced as",
        "cost", "field", "size"
    );
    for (cost, field, size, coordinate) in rows {
        let field_pad = field_width - field.chars().count();
        let size_pad = size_width - size.chars().count();
        let _ = writeln!(
            out,
            "{cost:>cost_width$}  {field}{}  {}{size}  {coordinate}",
            " ".repeat(field_pad),
            " ".repeat(size_pad)
        );
    }
    if estimate.breakdown_truncated {
        let _ = writeln!(
            out,
            "(breakdown truncated after {} lines)",
            estimate.breakdown.len()
        );
    }
    out
}

/// Whole numbers without decimals, others with up to two.
pub(crate) fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        let s = format!("{n:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}
