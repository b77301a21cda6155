//! Where the peers are in the text of a configuration: the `peers:` line and the
//! byte range of each item of its block sequence, found without a YAML parser so that
//! the items can be parsed one by one (and, on a reload, only those that changed).
//!
//! The layout is recognised only in a plain block-style document, and only when that is
//! certain; anything else gives `None`, and the caller parses the whole text with the
//! YAML parser instead. Recognised means:
//!
//! - every line outside the items passes [`clean_line`]: it opens nothing that a later
//!   line continues (no quoted scalar or flow collection spanning lines, no block scalar,
//!   no anchor, alias, tag or directive), so each line that starts in column 0 starts a
//!   key of the top-level block mapping;
//! - each such line is a plain `key:`, and one of them is exactly `peers:` (a comment may
//!   follow), with nothing after it but blank and comment lines and the items;
//! - the items are lines starting with `- ` (or a lone `-`) in one column `indent`; the
//!   lines of an item are its first line, lines indented deeper, blank lines and comment
//!   lines; the items end at the next line in column 0 that is not a comment.
//!
//! What an item says is left to the item parsers, which refuse what they cannot read
//! with the same certainty (`item`, and `clean_line` for the YAML parser's fallback).

/// The layout of a recognised text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layout {
    /// Start of each item (its `-` line), in file order.
    pub starts: Vec<usize>,
    /// Where the items end: the next top-level key's line, or the end of the text. Also
    /// where the first item would start when there is none.
    pub end: usize,
    /// Where the items begin: `starts[0]`, or `end` when there are none.
    pub first: usize,
    /// Column of the items' `-`.
    pub indent: usize,
}

/// The line starting at `at` (without its `\n`) and where the next one starts.
pub(super) fn line_at(text: &str, at: usize) -> (&str, usize) {
    match text[at..].find('\n') {
        Some(n) => (&text[at..at + n], at + n + 1),
        None => (&text[at..], text.len()),
    }
}

/// Leading spaces of a line.
fn indent_of(line: &str) -> usize {
    line.bytes().take_while(|&b| b == b' ').count()
}

/// What a line is to the splitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Line {
    /// Only spaces, or a comment after spaces.
    Blank,
    /// `- ` or a lone `-` in this column.
    Entry(usize),
    /// Anything else, starting in this column.
    Content(usize),
}

pub(super) fn classify(line: &str) -> Line {
    let col = indent_of(line);
    let rest = &line.as_bytes()[col..];
    match rest {
        [] | [b'#', ..] => Line::Blank,
        [b'-'] | [b'-', b' ', ..] => Line::Entry(col),
        _ => Line::Content(col),
    }
}

/// Splits `text`, or `None` if its layout is not recognised with certainty.
pub(super) fn split(text: &str) -> Option<Layout> {
    let first = front(text)?;
    let (indent, starts, end) = match classify(line_at(text, first).0) {
        Line::Entry(indent) if first < text.len() => {
            let (starts, end) = items(text, first, indent, |_| false)?;
            (indent, starts, end)
        }
        _ => (0, Vec::new(), first),
    };
    if !back(text, end) {
        return None;
    }
    Some(Layout {
        starts,
        end,
        first,
        indent,
    })
}

/// Checks the lines before the items and returns where the first item (or, with none,
/// the next key) starts.
pub(super) fn front(text: &str) -> Option<usize> {
    if text.starts_with('\u{feff}') {
        return None;
    }
    let mut at = 0;
    // Up to and including the `peers:` line.
    loop {
        if at >= text.len() {
            return None;
        }
        let (line, next) = line_at(text, at);
        if is_peers_line(line) {
            at = next;
            break;
        }
        if !clean_line(line) || !top_level_ok(line) {
            return None;
        }
        at = next;
    }
    // Blank and comment lines up to the first item or the next key.
    while at < text.len() {
        let (line, next) = line_at(text, at);
        match classify(line) {
            Line::Blank if clean_line(line) => at = next,
            Line::Blank => return None,
            Line::Entry(_) => return Some(at),
            Line::Content(0) => return Some(at),
            Line::Content(_) => return None,
        }
    }
    Some(at)
}

/// Checks the lines from `end` (the line after the items) to the end of the text.
pub(super) fn back(text: &str, end: usize) -> bool {
    let mut at = end;
    while at < text.len() {
        let (line, next) = line_at(text, at);
        if !clean_line(line) || !top_level_ok(line) || is_peers_line(line) {
            return false;
        }
        at = next;
    }
    true
}

/// Splits items from `from` (an item's first line) on: their starts, and where they end.
/// `stop(at)` is asked at each further item start and ends the walk there when true
/// (`end` is then `at`).
pub(super) fn items(
    text: &str,
    from: usize,
    indent: usize,
    mut stop: impl FnMut(usize) -> bool,
) -> Option<(Vec<usize>, usize)> {
    let mut starts = vec![from];
    let mut at = line_at(text, from).1;
    while at < text.len() {
        let (line, next) = line_at(text, at);
        match classify(line) {
            Line::Blank => {}
            Line::Entry(col) if col == indent => {
                if stop(at) {
                    return Some((starts, at));
                }
                starts.push(at);
            }
            Line::Content(0) | Line::Entry(0) => return Some((starts, at)),
            Line::Entry(col) | Line::Content(col) if col > indent => {}
            Line::Entry(_) | Line::Content(_) => return None,
        }
        at = next;
    }
    Some((starts, at))
}

/// `peers:` in column 0 with no value, perhaps a comment.
fn is_peers_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("peers:") else {
        return false;
    };
    let value = rest.trim_start_matches(' ');
    value.is_empty() || (value.starts_with('#') && rest.starts_with(' ') && clean_line(rest))
}

/// A line in column 0 (other than a comment) is a plain key: `name:` then a space or
/// the end of the line.
fn top_level_ok(line: &str) -> bool {
    match classify(line) {
        Line::Blank => true,
        Line::Content(0) => {
            let key_len = line
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            key_len > 0
                && line.as_bytes()[0].is_ascii_alphabetic()
                && matches!(line.as_bytes().get(key_len..key_len + 1), Some(b":"))
                && matches!(line.as_bytes().get(key_len + 1), None | Some(b' '))
        }
        Line::Entry(0) => false,
        _ => true,
    }
}

/// Whether `line` is complete in itself for a YAML reader that starts it in block
/// context with nothing open: every quoted scalar and flow collection it opens closes on
/// it, and it holds no block scalar indicator, anchor, alias, tag, directive, complex
/// key or reserved indicator. Comments may hold anything but the characters that would
/// end a line (for YAML 1.1, NEL, LS and PS do) and tabs.
///
/// The lexer knows only the subset it accepts and refuses the rest: quotes only where a
/// scalar may start, no quote or bracket inside plain scalars, no `:` inside a plain
/// scalar in a flow collection (YAML readers differ there).
pub(super) fn clean_line(line: &str) -> bool {
    let b = line.as_bytes();
    if !bytes_ok(b) {
        return false;
    }
    let n = b.len();
    let mut i = indent_of(line);
    let mut depth = 0usize;
    // A node may start here: the line's start, after `- `, `: `, or in a flow
    // collection after `[`, `{` and `,`.
    let mut at_start = true;
    while i < n {
        let c = b[i];
        if c == b' ' {
            i += 1;
            continue;
        }
        let spaced = i == 0 || b[i - 1] == b' ';
        if c == b'#' && spaced {
            // A comment: the rest of the line.
            return depth == 0;
        }
        if at_start {
            match c {
                b'"' | b'\'' => {
                    i = match quoted_end(b, i) {
                        Some(end) => end,
                        None => return false,
                    };
                    at_start = false;
                    if !after_node(b, &mut i, &mut depth, &mut at_start) {
                        return false;
                    }
                    continue;
                }
                b'[' | b'{' => {
                    depth += 1;
                    i += 1;
                    continue;
                }
                b']' | b'}' if depth > 0 => {
                    depth -= 1;
                    i += 1;
                    at_start = false;
                    if !after_node(b, &mut i, &mut depth, &mut at_start) {
                        return false;
                    }
                    continue;
                }
                b'-' if depth == 0 && matches!(b.get(i + 1), None | Some(b' ')) => {
                    i += 1;
                    continue;
                }
                b'-' | b'.' | b'+' | b'/' | b'_' | b'=' | b'~' | b'$' | b'(' | b')' | b'^'
                | b';' | b'<' => {}
                c if c.is_ascii_alphanumeric() || c >= 0x80 => {}
                // Indicators: `,` `]` `}` out of place, `:` `?` `&` `*` `!` `|` `>` `%`
                // `@` and the backquote, and the quotes and brackets handled above.
                _ => return false,
            }
            // A plain scalar starts here.
            at_start = false;
        }
        // Inside a plain scalar (or just after a node): up to its end.
        match c {
            b'"' | b'\'' | b'[' | b'{' => return false,
            b']' | b'}' if depth == 0 => return false,
            b',' if depth == 0 => i += 1,
            b']' | b'}' => {
                depth -= 1;
                i += 1;
                if !after_node(b, &mut i, &mut depth, &mut at_start) {
                    return false;
                }
            }
            b',' => {
                i += 1;
                at_start = true;
            }
            b':' => match b.get(i + 1) {
                None | Some(b' ') => {
                    i += 1;
                    at_start = true;
                }
                _ if depth > 0 => return false,
                _ => i += 1,
            },
            _ => i += 1,
        }
    }
    depth == 0
}

/// Moves past the spaces after a quoted scalar or a closed collection and checks what
/// follows: the end of the line, a comment, `:`, or in a flow collection `,` `]` `}`.
fn after_node(b: &[u8], i: &mut usize, depth: &mut usize, at_start: &mut bool) -> bool {
    let start = *i;
    while *i < b.len() && b[*i] == b' ' {
        *i += 1;
    }
    match b.get(*i) {
        None => true,
        Some(b'#') => *i > start,
        Some(b':') if matches!(b.get(*i + 1), None | Some(b' ')) => {
            *i += 1;
            *at_start = true;
            true
        }
        Some(b',') if *depth > 0 => {
            *i += 1;
            *at_start = true;
            true
        }
        Some(b']' | b'}') if *depth > 0 => {
            *depth -= 1;
            *i += 1;
            after_node(b, i, depth, at_start)
        }
        _ => false,
    }
}

/// The index after the quoted scalar starting at `i`, if it closes on this line.
fn quoted_end(b: &[u8], i: usize) -> Option<usize> {
    let quote = b[i];
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' if quote == b'"' => j += 2,
            b'\'' if quote == b'\'' && b.get(j + 1) == Some(&b'\'') => j += 2,
            c if c == quote => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// No tab, carriage return or other control character, and none of the characters that
/// YAML 1.1 also reads as line breaks (NEL, LS, PS) or the byte order mark.
pub(super) fn bytes_ok(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c < 0x20 || c == 0x7f {
            return false;
        }
        if c >= 0x80 {
            let bad = matches!(
                &b[i..b.len().min(i + 3)],
                [0xc2, 0x85, ..] | [0xe2, 0x80, 0xa8] | [0xe2, 0x80, 0xa9] | [0xef, 0xbb, 0xbf]
            );
            if bad {
                return false;
            }
        }
        i += 1;
    }
    true
}

/// How many leading bytes `a` and `b` share.
pub(super) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const CHUNK: usize = 4096;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + CHUNK <= n && a[i..i + CHUNK] == b[i..i + CHUNK] {
        i += CHUNK;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// How many trailing bytes `a` and `b` share, at most `limit`.
pub(super) fn common_suffix(a: &[u8], b: &[u8], limit: usize) -> usize {
    const CHUNK: usize = 4096;
    let n = a.len().min(b.len()).min(limit);
    let (la, lb) = (a.len(), b.len());
    let mut i = 0;
    while i + CHUNK <= n && a[la - i - CHUNK..la - i] == b[lb - i - CHUNK..lb - i] {
        i += CHUNK;
    }
    while i < n && a[la - i - 1] == b[lb - i - 1] {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_lines() {
        for ok in [
            "",
            "   ",
            "# anything: \"'[{ | > & *",
            "dpdk:",
            "  eal_args: [\"--no-pci\", \"--file-prefix\", \"wgdp\"]   # passed | verbatim",
            "  lcores: { control: 0, workers: [1, 2] }",
            "    device: \"net_af_xdp0,iface=eth1\"",
            "    device: net_af_xdp0,iface=eth1",
            "  - { prefix: \"198.18.200.0/24\", via: \"198.18.2.254\" }",
            "  - public_key: 'it''s'",
            "    endpoint: 198.19.0.1:51820",
            "  idle: adaptive          # adaptive | poll",
            "  a: b#c",
            "  - \"a\\\"b\" # x",
            "  x: []",
            "  x: [[a], {b: c}]",
        ] {
            assert!(clean_line(ok), "{ok:?} refused");
        }
        for bad in [
            "  x: \"open",
            "  x: [a,",
            "  x: {a: b",
            "  x: |",
            "  x: >-",
            "  x: &anchor a",
            "  x: *alias",
            "  x: !!str a",
            "%YAML 1.2",
            "? complex",
            "  x: a'b",
            "  x: a\"b",
            "  x: a[b",
            "  x: [a:b]",
            "  x: ]",
            "  x: \"a\" b",
            "  x: \"a\"# c",
            "\tx: a",
            "  x: a\r",
            "  x: a\u{2028}b",
            "  x: `a`",
            "  x: @a",
            "  x: [a] b",
        ] {
            assert!(!clean_line(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn splits_block_items() {
        let text = "dpdk: x\npeers:  # the peers\n  # lead\n  - a: 1\n    b: 2\n\n# c\n  - { a: 1 }\nmetrics: y\n";
        let l = split(text).unwrap();
        assert_eq!(l.indent, 2);
        assert_eq!(l.starts.len(), 2);
        assert_eq!(
            &text[l.starts[0]..l.starts[1]],
            "  - a: 1\n    b: 2\n\n# c\n"
        );
        assert_eq!(&text[l.starts[1]..l.end], "  - { a: 1 }\n");
        assert_eq!(&text[l.end..], "metrics: y\n");

        let l = split("peers:\n- a: 1\n- b: 2").unwrap();
        assert_eq!((l.indent, l.starts.clone(), l.end), (0, vec![7, 14], 20));

        let l = split("peers:\nuapi: {}\n").unwrap();
        assert!(l.starts.is_empty());
        assert_eq!(l.end, 7);
    }

    #[test]
    fn refuses_what_it_cannot_be_sure_of() {
        for text in [
            "dpdk: [a,\npeers:\n  - a: 1\n]\n",
            "---\npeers:\n  - a: 1\n",
            "peers: []\n",
            "peers:\n  - a: 1\n key: 2\n",
            "peers:\n  - a: 1\n  b: 2\n",
            "peers:\n  - a: 1\n    - b\nmetrics: |\n  x\n",
            "peers:\n  - a: 1\npeers:\n  - b: 2\n",
            "x: \"a\npeers:\n  - a: 1\n\"\n",
            "\u{feff}peers:\n  - a: 1\n",
            "metrics:\n  x: 1\n",
        ] {
            assert_eq!(split(text), None, "{text:?}");
        }
    }

    #[test]
    fn common_ends() {
        let a = vec![7u8; 10000];
        let mut b = a.clone();
        b[5000] = 1;
        assert_eq!(common_prefix(&a, &b), 5000);
        assert_eq!(common_suffix(&a, &b, usize::MAX), 4999);
        assert_eq!(common_suffix(&a, &b, 100), 100);
        assert_eq!(common_prefix(b"abc", b"abd"), 2);
        assert_eq!(common_suffix(b"xbc", b"abc", 3), 2);
    }
}
