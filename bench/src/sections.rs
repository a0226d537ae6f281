//! Marked blocks of `BENCHMARKS.md`: a section of the comparison that a
//! partial run may update in place sits between
//! `<!-- begin NAME -->` and `<!-- end NAME -->`.

/// `content` wrapped in the markers of block `name`.
pub fn block(name: &str, content: &str) -> String {
    format!(
        "<!-- begin {name} -->\n{}\n<!-- end {name} -->\n",
        content.trim_end()
    )
}

/// `doc` with block `name` replaced by `content`; a block not in `doc` yet
/// goes before `before` (a line of `doc`), or at the end when `before` is
/// not there either.
pub fn replace_block(doc: &str, name: &str, content: &str, before: &str) -> String {
    let new = block(name, content);
    let (begin, end) = (
        format!("<!-- begin {name} -->"),
        format!("<!-- end {name} -->"),
    );
    if let (Some(b), Some(e)) = (doc.find(&begin), doc.find(&end)) {
        if b < e {
            let mut tail = e + end.len();
            if doc[tail..].starts_with('\n') {
                tail += 1;
            }
            return format!("{}{new}{}", &doc[..b], &doc[tail..]);
        }
    }
    match doc.find(before) {
        Some(i) => format!("{}{new}\n{}", &doc[..i], &doc[i..]),
        None => format!("{doc}\n{new}"),
    }
}

/// The names of the blocks in `doc`, in order.
pub fn names(doc: &str) -> Vec<String> {
    doc.match_indices("<!-- begin ")
        .filter_map(|(i, m)| {
            let rest = &doc[i + m.len()..];
            rest.find(" -->").map(|j| rest[..j].to_string())
        })
        .collect()
}

/// Block `name` of `doc`, markers included (with the newline after the
/// end marker).
pub fn get<'a>(doc: &'a str, name: &str) -> Option<&'a str> {
    let (begin, end) = (
        format!("<!-- begin {name} -->"),
        format!("<!-- end {name} -->"),
    );
    let b = doc.find(&begin)?;
    let e = doc[b..].find(&end)? + b + end.len();
    let e = if doc[e..].starts_with('\n') { e + 1 } else { e };
    Some(&doc[b..e])
}

/// The load average of the last 1, 5 and 15 minutes, as the kernel shows
/// it (`"2.51 2.80 3.01"`), or `"unknown"`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_replaced_in_place_or_inserted() {
        let doc = "# t\n\nintro\n\n<!-- notes -->\nmine\n";
        let one = replace_block(doc, "floors", "| a |", "<!-- notes -->");
        assert_eq!(
            one,
            "# t\n\nintro\n\n<!-- begin floors -->\n| a |\n<!-- end floors -->\n\n<!-- notes -->\nmine\n"
        );
        let two = replace_block(&one, "floors", "| b |\n", "<!-- notes -->");
        assert!(two.contains("| b |") && !two.contains("| a |"));
        assert_eq!(two.matches("<!-- begin floors -->").count(), 1);
        assert!(two.ends_with("<!-- notes -->\nmine\n"));
        assert_eq!(names(&two), vec!["floors".to_string()]);
        assert_eq!(
            get(&two, "floors"),
            Some("<!-- begin floors -->\n| b |\n<!-- end floors -->\n")
        );
        assert_eq!(get(&two, "peers"), None);
        let three = replace_block("no marker", "x", "y", "<!-- notes -->");
        assert!(three.ends_with("<!-- end x -->\n"));
    }
}
