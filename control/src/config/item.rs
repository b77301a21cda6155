//! One item of `peers:` read without the YAML parser, for the shapes configurations are
//! written in: a flow mapping on one line (`- { public_key: "…", allowed_ips: ["…"] }`,
//! what scripts/scale-peers.py writes) or a block mapping with one key per line, its
//! `allowed_ips` a flow sequence or a block sequence.
//!
//! The parser accepts a strict subset of YAML and reads it exactly as the YAML parser
//! and serde would; everything else is refused (`None`) and left to them. Values are
//! double-quoted scalars without escapes, plain scalars that can only be strings (they
//! hold a `/`, `=` or, outside flow collections, a `:`, which no YAML number, boolean
//! or null does), and decimal integers for `persistent_keepalive`. Keys are the six of a
//! peer, each at most once. Comments may follow anything; tabs, control characters and
//! anything but ASCII are refused everywhere.

use super::layout::{bytes_ok, classify, Line};

/// A peer's keys as written, before any checking. `allowed_ips` is kept apart (in a
/// buffer that the caller reuses).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct PeerFields<'t> {
    pub public_key: &'t str,
    pub preshared_key: Option<&'t str>,
    pub preshared_key_file: Option<&'t str>,
    pub endpoint: Option<&'t str>,
    pub persistent_keepalive: Option<i64>,
}

/// A value as the subset has it.
enum Value<'t> {
    /// `key:` with nothing after it (YAML's null).
    Empty,
    Str(&'t str),
    Int(i64),
    /// A flow sequence; its items went to the buffer.
    Seq,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    PublicKey,
    PresharedKey,
    PresharedKeyFile,
    Endpoint,
    AllowedIps,
    Keepalive,
}

fn key(name: &str) -> Option<Field> {
    Some(match name {
        "public_key" => Field::PublicKey,
        "preshared_key" => Field::PresharedKey,
        "preshared_key_file" => Field::PresharedKeyFile,
        "endpoint" => Field::Endpoint,
        "allowed_ips" => Field::AllowedIps,
        "persistent_keepalive" => Field::Keepalive,
        _ => return None,
    })
}

/// Keys seen so far and the fields they gave.
struct Peer<'t> {
    fields: PeerFields<'t>,
    public_key: bool,
    seen: [bool; 6],
}

impl<'t> Peer<'t> {
    fn set(&mut self, key: Field, value: Value<'t>) -> Option<()> {
        let seen = &mut self.seen[key as usize];
        if *seen {
            return None;
        }
        *seen = true;
        let f = &mut self.fields;
        match (key, value) {
            (Field::PublicKey, Value::Str(s)) => {
                f.public_key = s;
                self.public_key = true;
            }
            (Field::PresharedKey, Value::Str(s)) => f.preshared_key = Some(s),
            (Field::PresharedKeyFile, Value::Str(s)) => f.preshared_key_file = Some(s),
            (Field::Endpoint, Value::Str(s)) => f.endpoint = Some(s),
            (Field::Keepalive, Value::Int(n)) => f.persistent_keepalive = Some(n),
            (
                Field::PresharedKey | Field::PresharedKeyFile | Field::Endpoint | Field::Keepalive,
                Value::Empty,
            ) => {}
            (Field::AllowedIps, Value::Seq | Value::Empty) => {}
            _ => return None,
        }
        Some(())
    }
}

/// Reads the item `text` (from its `-` in column `indent` to the next item), its
/// allowed IPs into `ips`; `None` if it is not in the subset.
pub(super) fn parse<'t>(
    text: &'t str,
    indent: usize,
    ips: &mut Vec<&'t str>,
) -> Option<PeerFields<'t>> {
    ips.clear();
    if !text.is_ascii() || !bytes_ok_lines(text) {
        return None;
    }
    let mut lines = text.split('\n');
    let first = lines.next()?;
    let rest = first.get(indent..)?.strip_prefix("- ")?;
    let spaces = rest.bytes().take_while(|&b| b == b' ').count();
    let body = &rest[spaces..];
    // The column of the mapping's keys.
    let column = indent + 2 + spaces;
    let mut peer = Peer {
        fields: PeerFields::default(),
        public_key: false,
        seen: [false; 6],
    };
    if let Some(flow) = body.strip_prefix('{') {
        let after = flow_mapping(flow, &mut peer, ips)?;
        if !line_end(after, false) {
            return None;
        }
        for line in lines {
            if classify(line) != Line::Blank {
                return None;
            }
        }
    } else {
        // A block mapping, its first key on the `-` line.
        let mut open_list = block_entry(body, &mut peer, ips)?;
        // The column of the block sequence under `allowed_ips`, once it has an item.
        let mut list_column = None;
        for line in lines {
            let col = match classify(line) {
                Line::Blank => continue,
                Line::Entry(col) | Line::Content(col) => col,
            };
            let body = &line[col..];
            if open_list && col >= column && list_column.map_or(true, |c| c == col) {
                if let Some(item) = body.strip_prefix("- ") {
                    list_column = Some(col);
                    let item = item.trim_start_matches(' ');
                    let (value, after) = scalar(item, false)?;
                    if !line_end(after, false) {
                        return None;
                    }
                    match value {
                        Value::Str(s) => ips.push(s),
                        _ => return None,
                    }
                    continue;
                }
            }
            if col != column {
                return None;
            }
            list_column = None;
            open_list = block_entry(body, &mut peer, ips)?;
        }
    }
    if !peer.public_key {
        return None;
    }
    Some(peer.fields)
}

fn bytes_ok_lines(text: &str) -> bool {
    text.split('\n').all(|line| bytes_ok(line.as_bytes()))
}

/// `key: value` (or `key:` alone) of a block mapping; whether `allowed_ips` was left
/// empty, so that a block sequence may follow.
fn block_entry<'t>(body: &'t str, peer: &mut Peer<'t>, ips: &mut Vec<&'t str>) -> Option<bool> {
    let (key, rest) = key_colon(body)?;
    let value_text = rest.trim_start_matches(' ');
    let spaced = value_text.len() < rest.len();
    if line_end(value_text, spaced) {
        // `key:` or `key:  # comment`: null, or the head of a block sequence.
        peer.set(key, Value::Empty)?;
        return Some(key == Field::AllowedIps);
    }
    if !spaced {
        return None;
    }
    let (value, after) = if let Some(seq) = value_text.strip_prefix('[') {
        let after = flow_sequence(seq, ips)?;
        (Value::Seq, after)
    } else {
        scalar(value_text, false)?
    };
    if !line_end(after, false) {
        return None;
    }
    peer.set(key, value)?;
    Some(false)
}

/// A key of a peer, then `:` and a space or the end; the text after the `:`.
fn key_colon(text: &str) -> Option<(Field, &str)> {
    let len = text
        .bytes()
        .take_while(|b| b.is_ascii_lowercase() || *b == b'_')
        .count();
    let k = key(&text[..len])?;
    let rest = text[len..].strip_prefix(':')?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    Some((k, rest))
}

/// Only spaces and perhaps a comment (a `#` after a space, or at the start when
/// `spaced`) up to the end of the line.
fn line_end(text: &str, spaced: bool) -> bool {
    let rest = text.trim_start_matches(' ');
    rest.is_empty() || (rest.starts_with('#') && (spaced || rest.len() < text.len()))
}

/// `{ key: value, … }` after its `{`; the text after the `}`.
fn flow_mapping<'t>(
    mut text: &'t str,
    peer: &mut Peer<'t>,
    ips: &mut Vec<&'t str>,
) -> Option<&'t str> {
    loop {
        text = text.trim_start_matches(' ');
        let (key, rest) = key_colon(text)?;
        let value_text = rest.trim_start_matches(' ');
        if value_text.len() == rest.len() {
            return None;
        }
        let (value, after) = if let Some(seq) = value_text.strip_prefix('[') {
            (Value::Seq, flow_sequence(seq, ips)?)
        } else {
            scalar(value_text, true)?
        };
        peer.set(key, value)?;
        let after = after.trim_start_matches(' ');
        if let Some(rest) = after.strip_prefix(',') {
            text = rest;
        } else {
            return after.strip_prefix('}');
        }
    }
}

/// `[ "a", b, … ]` after its `[`, strings only, into `ips`; the text after the `]`.
fn flow_sequence<'t>(text: &'t str, ips: &mut Vec<&'t str>) -> Option<&'t str> {
    let mut text = text.trim_start_matches(' ');
    if let Some(after) = text.strip_prefix(']') {
        return Some(after);
    }
    loop {
        let (value, after) = scalar(text, true)?;
        match value {
            Value::Str(s) => ips.push(s),
            _ => return None,
        }
        let after = after.trim_start_matches(' ');
        if let Some(rest) = after.strip_prefix(',') {
            text = rest.trim_start_matches(' ');
        } else {
            return after.strip_prefix(']');
        }
    }
}

/// A double-quoted scalar without escapes, a plain scalar that can only be a string,
/// or a decimal integer; the text after it. In a flow collection (`flow`) a plain
/// scalar ends at `,` `]` `}` and may not hold a `:`.
fn scalar(text: &str, flow: bool) -> Option<(Value<'_>, &str)> {
    if let Some(quoted) = text.strip_prefix('"') {
        let end = quoted.find(['"', '\\'])?;
        if quoted.as_bytes()[end] != b'"' {
            return None;
        }
        return Some((Value::Str(&quoted[..end]), &quoted[end + 1..]));
    }
    let len = text
        .bytes()
        .take_while(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'+' | b'/' | b'=' | b'.' | b'_' | b'-')
                || (b == b':' && !flow)
        })
        .count();
    let (plain, after) = text.split_at(len);
    let next = after.bytes().next();
    let ends = match next {
        None | Some(b' ') => true,
        Some(b',' | b']' | b'}') => flow,
        _ => false,
    };
    let first = plain.bytes().next()?;
    if !ends || matches!(first, b'-' | b':' | b'=') || plain.ends_with(':') {
        return None;
    }
    if plain.bytes().all(|b| b.is_ascii_digit()) {
        // Decimal without a leading zero, and short enough for any integer type.
        if plain.len() > 9 || (plain.len() > 1 && first == b'0') {
            return None;
        }
        return Some((Value::Int(plain.parse().ok()?), after));
    }
    if plain.bytes().any(|b| matches!(b, b'/' | b'=' | b':')) {
        return Some((Value::Str(plain), after));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Option<(PeerFields<'_>, Vec<&str>)> {
        let mut ips = Vec::new();
        let indent = text.bytes().take_while(|&b| b == b' ').count();
        parse(text, indent, &mut ips).map(|f| (f, ips))
    }

    #[test]
    fn reads_the_usual_shapes() {
        // A `:` in a plain scalar of a flow sequence is refused.
        assert!(read(
            "  - { public_key: \"k=\", allowed_ips: [\"198.18.1.0/24\", 2001:db8::/64] }\n"
        )
        .is_none());

        let (f, ips) = read(
            "  - { public_key: \"k=\", allowed_ips: [\"198.18.1.0/24\", 198.18.2.0/24] }  # x\n",
        )
        .unwrap();
        assert_eq!(f.public_key, "k=");
        assert_eq!(ips, ["198.18.1.0/24", "198.18.2.0/24"]);

        let text = "  - public_key: k=   # laptop\n    preshared_key_file: \"a/b.psk\"\n\n    # comment\n    endpoint: 198.19.0.1:51820\n    allowed_ips:\n      - \"198.18.1.0/24\"  # one\n      - 2001:db8::/64\n    persistent_keepalive: 25\n# between items\n";
        let (f, ips) = read(text).unwrap();
        assert_eq!(
            f,
            PeerFields {
                public_key: "k=",
                preshared_key: None,
                preshared_key_file: Some("a/b.psk"),
                endpoint: Some("198.19.0.1:51820"),
                persistent_keepalive: Some(25),
            }
        );
        assert_eq!(ips, ["198.18.1.0/24", "2001:db8::/64"]);

        // An indentless sequence, an empty list and empty values.
        let (f, ips) =
            read("- public_key: \"k\"\n  allowed_ips:\n  - \"a/1\"\n  - \"b/2\"\n  endpoint:\n")
                .unwrap();
        assert_eq!((f.endpoint, ips), (None, vec!["a/1", "b/2"]));
        let (_, ips) = read("  - public_key: \"k\"\n    allowed_ips: []\n").unwrap();
        assert!(ips.is_empty());
        let (_, ips) = read("  - public_key: \"k\"\n    allowed_ips:\n").unwrap();
        assert!(ips.is_empty());
    }

    #[test]
    fn refuses_the_rest() {
        for text in [
            "  - public_key: \"k\\u0041\"\n",
            "  - public_key: 'k'\n",
            "  - public_key: k\n",
            "  - public_key: 123\n",
            "  - public_key: \"k\"\n    persistent_keepalive: \"25\"\n",
            "  - public_key: \"k\"\n    persistent_keepalive: 025\n",
            "  - public_key: \"k\"\n    persistent_keepalive: -1\n",
            "  - public_key: \"k\"\n    endpoint: ~\n",
            "  - public_key: \"k\"\n    public_key: \"k\"\n",
            "  - public_key: \"k\"\n    allowd_ips: []\n",
            "  - public_key: \"k\"\n     endpoint: \"e:1\"\n",
            "  - public_key: \"k=\n    x\"\n",
            "  - public_key: k=\n      continued\n",
            "  - public_key: \"k\"\n    allowed_ips: \"a/1\"\n",
            "  - public_key: \"k\"\n    allowed_ips: [\"a/1\",]\n",
            "  - public_key: \"k\"\n    allowed_ips:\n      - \"a/1\"\n     - \"b/1\"\n",
            "  - public_key: \"k\"\n    endpoint:\n      - \"a/1\"\n",
            "  - public_key: \"k\" # x\n    allowed_ips: [\"a/1\"]#c\n",
            "  - { public_key: \"k\" }\n    endpoint: \"e:1\"\n",
            "  - { public_key: \"k\", }\n",
            "  - { public_key: \"k\"\n",
            "  - public_key: \"k\"\t\n",
            "  - public_key: \"k\" # é\n",
            "  - public_key:\"k\"\n",
            "  - \"public_key\": \"k\"\n",
            "  - endpoint: \"e:1\"\n",
            "  -\n    public_key: \"k\"\n",
            "  - public_key: &a \"k\"\n",
        ] {
            assert!(read(text).is_none(), "{text:?} accepted");
        }
    }
}
