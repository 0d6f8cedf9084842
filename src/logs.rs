//! Log lines as they travel from drones to the server: bounded in size, so that no line
//! can outgrow a message or the server's memory.

/// The longest log line kept, in bytes; the rest is cut and said so.
pub const MAX_LINE_BYTES: usize = 8 * 1024;

/// `line` cut to at most [`MAX_LINE_BYTES`] (on a character boundary), with a marker
/// saying how long it was.
pub fn bounded_line(mut line: String) -> String {
    if line.len() <= MAX_LINE_BYTES {
        return line;
    }
    let total = line.len();
    let marker = format!(" … [cut: {total} bytes in all, at most {MAX_LINE_BYTES} are kept]");
    let mut end = MAX_LINE_BYTES - marker.len();
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line.truncate(end);
    line.push_str(&marker);
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_with_a_marker_and_short_ones_kept() {
        assert_eq!(bounded_line("short".into()), "short");
        let long = "é".repeat(1 << 20); // 2 MB of two-byte characters
        let cut = bounded_line(long);
        assert!(cut.len() <= MAX_LINE_BYTES, "{}", cut.len());
        assert!(cut.ends_with("[cut: 2097152 bytes in all, at most 8192 are kept]"));
        assert!(cut.starts_with("éé"));
    }
}
