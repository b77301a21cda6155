//! Reading by parts and by differences gives what reading the whole text gives.
//!
//! `source::parse_split` (the peers item by item) and `reload` (only what changed since
//! the previous load) promise the result of `parse_whole`, the YAML parser and serde over
//! the whole text: the same [`Config`] or the same error, key path and reason alike.
//! These tests hold them to it over a corpus of texts (the shapes the item parser reads,
//! shapes only the YAML parser may read, and mistakes of every kind), over scripted
//! edits of a loaded file, and over a few hundred seeded random edits. They also check
//! that the fast paths are actually taken where they are meant to be, so that always
//! falling back to whole reading could not pass them.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::*;

// Real keys, made with `wg genkey | tee priv | wg pubkey` and `wg genpsk`.
const GATEWAY_PRIVATE: &str = "2AE5ZYOXw7Z59ZuCa8ev2J+DQdmiHiFmsJWNCdebEUo=";
const GATEWAY_PUBLIC: &str = "sjqtiiul7IvvnNWuAeqU3CzSRHos7yX/YpuquXDJ7mA=";
const PSK: &str = "gQFoga4GS0lKD1NsvdJ7H6wtcLyzDX+bzNsJdeS0d7s=";

/// xorshift64*: deterministic, and enough to pick edits and make keys.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// A distinct valid key (32 non-zero bytes in base64) for each `id`.
fn key_of(id: u64) -> String {
    let mut rng = Rng::new(id + 1);
    let mut bytes = [0u8; KEY_LEN];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next().to_le_bytes());
    }
    STANDARD.encode(bytes)
}

/// The public key of a private key, both in base64.
fn public_of(private: &str) -> String {
    let bytes = decode_key(private).unwrap();
    let secret = x25519_dalek::StaticSecret::from(bytes);
    STANDARD.encode(x25519_dalek::PublicKey::from(&secret).to_bytes())
}

/// A scratch directory for configuration and key files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("wgdp-config-by-parts-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Everything a configuration holds, secrets included (their `Debug` is redacted), but
/// not what `source` keeps for the next reload: what two readings must agree on.
fn describe(config: &Config) -> String {
    let mut copy = config.clone();
    copy.source = None;
    let mut out = format!("{copy:?}");
    out.push_str(&format!(
        "\nprivate_key {:?}",
        copy.wireguard.private_key.as_bytes()
    ));
    for (p, peer) in copy.peers.iter().enumerate() {
        let psk = peer.preshared_key.as_ref().map(|k| *k.as_bytes());
        out.push_str(&format!("\npeers[{p}].preshared_key {psk:?}"));
    }
    out
}

fn outcome(result: &Result<Config, ConfigError>) -> Result<String, ConfigError> {
    result.as_ref().map(describe).map_err(Clone::clone)
}

/// A reading's result and whether it found a secret written in the text.
fn parsed_outcome(
    result: Result<source::Parsed, ConfigError>,
) -> Result<(String, bool), ConfigError> {
    result.map(|parsed| (describe(&parsed.config), parsed.inline_secret))
}

/// Replaces the `@NAME@` placeholders: `@K0@`..`@K9@` peer keys, the gateway's keys, the
/// preshared key, and the absolute path of `peer.psk` in `dir`.
fn fill(text: &str, dir: &Path) -> String {
    let mut out = text
        .replace("@GW_PRIV@", GATEWAY_PRIVATE)
        .replace("@GW_PUB@", GATEWAY_PUBLIC)
        .replace("@PSK@", PSK)
        .replace("@PSKPATH@", &dir.join("peer.psk").display().to_string());
    for i in 0..10 {
        out = out.replace(&format!("@K{i}@"), &key_of(i));
    }
    assert!(!out.contains('@'), "unknown placeholder in {out}");
    out
}

/// What comes before `peers:` in most texts: IPv4 and IPv6 outside, IPv4 inside.
const FRONT: &str = "\
dpdk:
  lcores: { control: 0, workers: [1] }
ports:
  outside:
    device: \"net_af_xdp0,iface=eth1\"
    addresses: [\"198.19.0.2/24\", \"2001:2:0:1::2/64\"]
  inside:
    device: \"net_af_xdp1,iface=eth2\"
    addresses: [\"198.18.2.1/24\"]
wireguard:
  private_key: \"@GW_PRIV@\"
";

/// `FRONT`, the peers section `peers` (from its `peers:` line), nothing after.
fn doc(peers: &str) -> String {
    format!("{FRONT}{peers}")
}

/// `doc(peers)` with `from` in the front replaced by `to`.
fn doc_with(from: &str, to: &str, peers: &str) -> String {
    assert!(FRONT.contains(from), "{from:?} is not in FRONT");
    format!("{}{peers}", FRONT.replacen(from, to, 1))
}

/// Which reading a text is meant to get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// By parts, every item by the item parser.
    Items,
    /// By parts, at least one item read alone by the YAML parser.
    Alone,
    /// Not by parts: `parse_split` gives `None`.
    Whole,
    /// Whichever (the corpus does not mean to pin it).
    Any,
}

/// What reading the whole text is meant to give.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Ok,
    /// The exact key path and part of the reason.
    Err(&'static str, &'static str),
    Any,
}

struct Case {
    name: String,
    text: String,
    via: Via,
    expect: Expect,
}

fn case(name: impl Into<String>, text: String, via: Via, expect: Expect) -> Case {
    Case {
        name: name.into(),
        text,
        via,
        expect,
    }
}

/// Checks one text: the whole reading gives what the case expects, `parse_split` takes
/// the path the case expects and, where it reads the text, gives the same result.
fn check_case(case: &Case, dir: &Path) {
    let text = fill(&case.text, dir);
    let name = &case.name;
    let whole = parsed_outcome(parse_whole(&text, dir));
    match (case.expect, &whole) {
        (Expect::Ok, Ok(_)) | (Expect::Any, _) => {}
        (Expect::Err(path, reason), Err(err)) => {
            assert_eq!(err.path, path, "{name}: wrong key path in {err:?}\n{text}");
            assert!(
                err.reason.contains(reason),
                "{name}: {err:?} lacks {reason:?}\n{text}"
            );
        }
        (expect, got) => panic!("{name}: expected {expect:?}, whole reading gave {got:?}\n{text}"),
    }

    let split = source::parse_split(&text, dir);
    match case.via {
        Via::Any => {}
        Via::Whole => assert!(split.is_none(), "{name}: read by parts\n{text}"),
        Via::Items | Via::Alone => {
            assert!(split.is_some(), "{name}: not read by parts\n{text}");
            let layout = layout::split(&text).expect("a layout");
            let mut ips = Vec::new();
            let refused = (0..layout.starts.len()).find(|&p| {
                let end = layout.starts.get(p + 1).copied().unwrap_or(layout.end);
                item::parse(&text[layout.starts[p]..end], layout.indent, &mut ips).is_none()
            });
            match (case.via, refused) {
                (Via::Items, Some(p)) => {
                    panic!("{name}: the item parser refuses peers[{p}]\n{text}")
                }
                (Via::Alone, None) => {
                    panic!("{name}: the item parser reads every item\n{text}")
                }
                _ => {}
            }
        }
    }
    if let Some(split) = split {
        assert_eq!(
            parsed_outcome(split),
            whole,
            "{name}: reading by parts differs from whole reading\n{text}"
        );
    }
    // And the public entry point, whichever way it goes.
    assert_eq!(
        parse(&text, dir).map(|c| describe(&c)),
        whole.map(|(config, _)| config),
        "{name}: parse differs\n{text}"
    );
}

fn check_corpus(tag: &str, cases: &[Case]) {
    let dir = Scratch::new(tag);
    dir.write("peer.psk", &format!("{PSK}\n"));
    dir.write("peer#1.psk", &format!("  {PSK}  \n\n"));
    dir.write("bad.psk", "abcd\n");
    dir.write("empty.psk", "\n");
    for case in cases {
        check_case(case, &dir.0);
    }
}

/// Valid texts in every shape the item parser reads, and a few it leaves to the YAML
/// parser item by item.
#[test]
fn valid_texts_read_by_parts_as_whole() {
    use Expect::Ok as Fine;
    let cases = [
        case(
            "flow mappings on one line, as scripts/scale-peers.py writes them",
            doc("peers:
  - { public_key: \"@K0@\", allowed_ips: [\"198.19.128.0/32\", \"2001:2:0:1000::/128\"] }
  - { public_key: \"@K1@\", allowed_ips: [\"198.19.128.1/32\", \"2001:2:0:1000::1/128\"] }
  - { public_key: \"@K2@\", allowed_ips: [\"2001:2:0:1000::2/128\"] }
"),
            Via::Items,
            Fine,
        ),
        case(
            "block mappings, every key, flow and block lists, plain and quoted",
            doc("peers:   # the peers
  # first a laptop
  - public_key: \"@K0@\"   # laptop
    preshared_key: \"@PSK@\"
    endpoint: \"198.19.0.1:51820\"
    allowed_ips: [\"198.18.99.2/32\", \"198.18.1.0/24\"]
    persistent_keepalive: 25
  - public_key: @K1@
    endpoint: 198.19.0.9:1
    allowed_ips:
      - \"198.18.3.0/24\"   # one
      - 2001:2:0:3::/64
      - 198.18.4.7/24

# a comment between items, in column 0

  - allowed_ips:
    - 198.18.5.0/24
    # a comment inside the list
    - \"2001:2:0:5::/64\"
    public_key: \"@K2@\"
    preshared_key_file: \"peer.psk\"
    endpoint: \"[2001:2::9]:51820\"
    persistent_keepalive: 1
  - public_key:    \"@K3@\"    
    persistent_keepalive: 65535   # the largest
    preshared_key_file: @PSKPATH@
    allowed_ips:   # none yet
"),
            Via::Items,
            Fine,
        ),
        case(
            "flow mappings with odd spacing, plain scalars and comments",
            doc("peers:
  -   {public_key: @K0@ ,allowed_ips: [ 198.18.6.0/24 , \"198.18.7.0/24\" ],endpoint: \"198.19.0.7:7\", persistent_keepalive: 9}   # six and seven
  - {public_key: \"@K1@\",preshared_key_file: \"peer.psk\", allowed_ips: []}
  - { allowed_ips: [\"2001:2:0:8::/64\"], preshared_key: @PSK@, public_key: \"@K2@\" }

"),
            Via::Items,
            Fine,
        ),
        case(
            "empty values",
            doc("peers:
  - public_key: \"@K0@\"
    endpoint:
    preshared_key:
    preshared_key_file:
    persistent_keepalive:
    allowed_ips:
  - public_key: \"@K1@\"
    allowed_ips: []
  - { public_key: \"@K2@\", allowed_ips: [] }
  - public_key: \"@K3@\"
"),
            Via::Items,
            Fine,
        ),
        case(
            "items in column 0 (an indentless sequence), lists indentless too",
            doc("peers:
- public_key: \"@K0@\"
  allowed_ips:
  - 198.18.10.0/24
  - 2001:2:0:10::/64
- { public_key: \"@K1@\", allowed_ips: [\"198.18.11.0/24\"] }
"),
            Via::Items,
            Fine,
        ),
        case(
            "items in column 4, no final newline",
            doc("peers:

    - public_key: \"@K0@\"
      allowed_ips:
          - 198.18.12.0/24
    -   public_key: \"@K1@\"
        allowed_ips: [198.18.13.0/24]
        endpoint: \"198.19.0.13:13\""),
            Via::Items,
            Fine,
        ),
        case(
            "more sections after the peers",
            doc("peers:
  - public_key: \"@K0@\"
    allowed_ips: [\"198.18.1.0/24\"]
# the sections that follow
crypto:
  backend: software
control_port: { tap: wgdp0 }
metrics:
  listen: \"127.0.0.1:9586\"
  peer_series: 10
uapi:
  name: wgdp0
"),
            Via::Items,
            Fine,
        ),
        case(
            "a control port with an export after the peers",
            doc("peers:
  - public_key: \"@K0@\"
    allowed_ips: [\"198.18.1.0/24\"]
control_port:
  tap: wgdp0
  export: { table: 200, announce: [\"198.19.0.2\", \"2001:2:0:1::2\"], stall_ms: 500 }
"),
            Via::Items,
            Fine,
        ),
        case(
            "an export announcing an address of the inside port",
            doc("peers:
  - public_key: \"@K0@\"
    allowed_ips: [\"198.18.1.0/24\"]
control_port:
  tap: wgdp0
  export:
    table: 200
    announce: [198.18.2.1]
"),
            Via::Items,
            Expect::Err(
                "control_port.export.announce[0]",
                "is not an address of ports.outside",
            ),
        ),
        case(
            "IPv6 endpoints and allowed IPs only",
            doc("peers:
  - public_key: \"@K0@\"
    endpoint: \"[2001:2:0:1::9]:51820\"
    allowed_ips: [\"2001:2:0:20::/64\", \"::/0\"]
  - public_key: \"@K1@\"
    allowed_ips:
      - 2001:2:0:21::1/128
      - 0.0.0.0/0
"),
            Via::Items,
            Fine,
        ),
        case(
            "a small MTU and IPv4 peers only",
            doc_with(
                "private_key: \"@GW_PRIV@\"",
                "private_key: \"@GW_PRIV@\"\n  mtu: 1000\n  listen_port: 65535",
                "peers:\n  - { public_key: \"@K0@\", allowed_ips: [\"198.18.1.0/24\"] }\n",
            ),
            Via::Items,
            Fine,
        ),
        case(
            "handshake threads in the front",
            doc_with(
                "  lcores: { control: 0, workers: [1] }",
                "  lcores: { control: 0, workers: [1] }\n  handshake_threads: 2",
                "peers:\n  - { public_key: \"@K0@\", allowed_ips: [\"198.18.1.0/24\"] }\n",
            ),
            Via::Items,
            Fine,
        ),
        case(
            "too many handshake threads in the front",
            doc_with(
                "  lcores: { control: 0, workers: [1] }",
                "  lcores: { control: 0, workers: [1] }\n  handshake_threads: -1",
                "peers:\n  - { public_key: \"@K0@\", allowed_ips: [\"198.18.1.0/24\"] }\n",
            ),
            Via::Any,
            Expect::Err("dpdk.handshake_threads", "between"),
        ),
        case(
            "no items, then a section",
            doc("peers:   # none yet\n  # - public_key: \"@K0@\"\nmetrics:\n  listen: \"127.0.0.1:9586\"\n"),
            Via::Items,
            Fine,
        ),
        case(
            "no items, at the end",
            doc("peers:\n"),
            Via::Items,
            Fine,
        ),
        case(
            "no items, no final newline",
            doc("peers:"),
            Via::Items,
            Fine,
        ),
        case(
            "nested networks across peers",
            doc("peers:
  - { public_key: \"@K0@\", allowed_ips: [\"198.18.0.0/15\"] }
  - { public_key: \"@K1@\", allowed_ips: [\"198.18.1.0/24\", \"198.18.1.7/32\"] }
"),
            Via::Items,
            Fine,
        ),
        case(
            "a plain scalar holding # and : inside",
            doc("peers:
  - public_key: \"@K0@\"
    preshared_key_file: peer#1.psk
    allowed_ips:
      - 198.18.1.0/24
"),
            Via::Alone,
            Fine,
        ),
        case(
            "single-quoted scalars",
            doc("peers:
  - public_key: '@K0@'
    allowed_ips: ['198.18.1.0/24']
  - { public_key: \"@K1@\", allowed_ips: [\"198.18.2.0/24\"] }
"),
            Via::Alone,
            Fine,
        ),
        case(
            "an escape in a double-quoted scalar",
            doc("peers:\n  - { public_key: \"@K0@\", allowed_ips: [\"198.18.1.0\\x2f24\"] }\n"),
            Via::Alone,
            Fine,
        ),
        case(
            "a lone dash, the mapping below it",
            doc("peers:
  -
    public_key: \"@K0@\"
    allowed_ips: [\"198.18.1.0/24\"]
  - # a comment where the mapping would start
    public_key: \"@K1@\"
"),
            Via::Alone,
            Fine,
        ),
        case(
            "a non-ASCII comment in an item",
            doc("peers:\n  - public_key: \"@K0@\"   # café\n    allowed_ips: [\"198.18.1.0/24\"]\n"),
            Via::Alone,
            Fine,
        ),
        case(
            "a quoted key",
            doc("peers:\n  - \"public_key\": \"@K0@\"\n    'allowed_ips': [\"198.18.1.0/24\"]\n"),
            Via::Alone,
            Fine,
        ),
        case(
            "a hexadecimal keepalive",
            doc("peers:\n  - public_key: \"@K0@\"\n    persistent_keepalive: 0x19\n"),
            Via::Alone,
            Fine,
        ),
        case(
            "a multi-line plain scalar",
            doc("peers:\n  - public_key: \"@K0@\"\n    preshared_key_file:\n      peer.psk\n"),
            Via::Alone,
            Fine,
        ),
        case(
            "peers before the other sections",
            format!("peers:\n  - {{ public_key: \"@K0@\" }}\n{FRONT}"),
            Via::Items,
            Expect::Ok,
        ),
        case(
            "peers in the middle",
            FRONT.replacen("wireguard:", "peers:\n  - { public_key: \"@K0@\" }\nwireguard:", 1),
            Via::Items,
            Expect::Ok,
        ),
    ];
    check_corpus("valid", &cases);
}

/// Shapes reading by parts must leave to the YAML parser; whatever that gives.
#[test]
fn what_by_parts_cannot_be_sure_of_is_read_whole() {
    let one = "peers:\n  - { public_key: \"@K0@\", allowed_ips: [\"198.18.1.0/24\"] }\n";
    let cases = [
        case(
            "an anchor and an alias across items",
            doc("peers:
  - public_key: &key \"@K0@\"
    allowed_ips: [\"198.18.1.0/24\"]
  - public_key: *key
"),
            Via::Whole,
            Expect::Err("peers[1].public_key", "is also the key of peers[0]"),
        ),
        case(
            "an anchor in the front, its alias in an item",
            doc_with(
                "private_key: \"@GW_PRIV@\"",
                "private_key: \"@GW_PRIV@\"\n  listen_port: &port 51820",
                "peers:\n  - public_key: \"@K0@\"\n    persistent_keepalive: *port\n",
            ),
            Via::Whole,
            Expect::Ok,
        ),
        case(
            "a double-quoted scalar over two lines",
            doc("peers:\n  - public_key: \"y5UiRTv21z13y1slCElewt5wrp\n      mWPIXcYT/8soAPEFk=\"\n"),
            Via::Whole,
            Expect::Err("peers[0].public_key", "45 characters"),
        ),
        case(
            "a single-quoted scalar over two lines",
            doc("peers:\n  - public_key: '@K0@'\n    endpoint: '198.19.0.1:\n      51820'\n"),
            Via::Whole,
            Expect::Err("peers[0].endpoint", "is not IP:port"),
        ),
        case(
            "a folded block scalar",
            doc("peers:\n  - public_key: >-\n      @K0@\n    allowed_ips: [\"198.18.1.0/24\"]\n"),
            Via::Whole,
            Expect::Ok,
        ),
        case(
            "a literal block scalar",
            doc("peers:\n  - public_key: |\n      @K0@\n"),
            Via::Whole,
            Expect::Err("peers[0].public_key", "45 characters"),
        ),
        case(
            "a tab before a comment in an item",
            doc("peers:\n  - public_key: \"@K0@\"\t# tab\n"),
            Via::Whole,
            Expect::Any,
        ),
        case(
            "a tab in the front",
            doc_with("  lcores:", "  lcores:\t", one),
            Via::Whole,
            Expect::Any,
        ),
        case(
            "a line separator in a comment",
            doc("peers:\n  - public_key: \"@K0@\"  # a\u{2028}b\n"),
            Via::Whole,
            Expect::Any,
        ),
        case(
            "a next-line character in a comment",
            doc("peers:\n  - public_key: \"@K0@\"  # a\u{85}b\n"),
            Via::Whole,
            Expect::Any,
        ),
        case(
            "a carriage return before each newline",
            doc(one).replace('\n', "\r\n"),
            Via::Whole,
            Expect::Ok,
        ),
        case(
            "a byte order mark",
            format!("\u{feff}{}", doc(one)),
            Via::Whole,
            Expect::Any,
        ),
        case(
            "a document start marker",
            format!("---\n{}", doc(one)),
            Via::Whole,
            Expect::Ok,
        ),
        case(
            "a document end marker",
            format!("{}...\n", doc(one)),
            Via::Whole,
            Expect::Ok,
        ),
        case(
            "a duplicate key in an item",
            doc("peers:\n  - public_key: \"@K0@\"\n    allowed_ips: []\n    public_key: \"@K1@\"\n"),
            Via::Whole,
            Expect::Err("", "duplicate entry"),
        ),
        case(
            "a duplicate key in a flow item",
            doc("peers:\n  - { public_key: \"@K0@\", public_key: \"@K1@\" }\n"),
            Via::Whole,
            Expect::Err("", "duplicate entry"),
        ),
        case(
            "an unknown key in an item",
            doc("peers:\n  - public_key: \"@K0@\"\n    allowd_ips: [\"198.18.1.0/24\"]\n"),
            Via::Whole,
            Expect::Err("peers[0].allowd_ips", "unknown key"),
        ),
        case(
            "an item without a public key",
            doc("peers:\n  - { public_key: \"@K0@\" }\n  - allowed_ips: [\"198.18.1.0/24\"]\n"),
            Via::Whole,
            Expect::Err("peers[1].public_key", "is required"),
        ),
        case(
            "a number for a key",
            doc("peers:\n  - public_key: 123\n"),
            Via::Whole,
            Expect::Err("peers[0].public_key", "invalid type"),
        ),
        case(
            "a string for the keepalive",
            doc("peers:\n  - public_key: \"@K0@\"\n    persistent_keepalive: \"25\"\n"),
            Via::Whole,
            Expect::Err("peers[0].persistent_keepalive", "invalid type"),
        ),
        case(
            "a string for the allowed IPs",
            doc("peers:\n  - public_key: \"@K0@\"\n    allowed_ips: \"198.18.1.0/24\"\n"),
            Via::Whole,
            Expect::Err("peers[0].allowed_ips", "invalid type"),
        ),
        case(
            "a null public key",
            doc("peers:\n  - public_key:\n"),
            Via::Whole,
            Expect::Err("peers[0].public_key", ""),
        ),
        case(
            "a flow mapping over two lines",
            doc("peers:
  - { public_key: \"@K0@\",
      allowed_ips: [\"198.18.1.0/24\"] }
  - { public_key: \"@K1@\" }
"),
            Via::Whole,
            Expect::Ok,
        ),
        case(
            "a flow sequence over two lines",
            doc("peers:
  - public_key: \"@K0@\"
    allowed_ips: [\"198.18.1.0/24\",
      \"198.18.2.0/24\"]
"),
            Via::Whole,
            Expect::Ok,
        ),
        case(
            "plain IPv6 networks in a flow sequence",
            doc("peers:\n  - { public_key: \"@K0@\", allowed_ips: [2001:2:0:7::/64] }\n"),
            Via::Whole,
            Expect::Any,
        ),
        case(
            "an endpoint that reads as a flow sequence",
            doc("peers:\n  - public_key: \"@K0@\"\n    endpoint: [2001:2::1]:51820\n"),
            Via::Whole,
            Expect::Any,
        ),
        case(
            "a tag",
            doc("peers:\n  - public_key: !!str \"@K0@\"\n"),
            Via::Whole,
            Expect::Ok,
        ),
        case(
            "a complex key",
            doc("peers:\n  - ? public_key\n    : \"@K0@\"\n"),
            Via::Whole,
            Expect::Ok,
        ),
        case("peers: []", doc("peers: []\n"), Via::Whole, Expect::Ok),
        case("peers: ~", doc("peers: ~\n"), Via::Whole, Expect::Ok),
        case(
            "peers as a flow sequence",
            doc("peers: [{ public_key: \"@K0@\" }, { public_key: \"@K1@\" }]\n"),
            Via::Whole,
            Expect::Ok,
        ),
        case("no peers key", FRONT.to_string(), Via::Whole, Expect::Ok),
        case(
            "peers twice",
            doc(&format!("{one}{one}")),
            Via::Whole,
            Expect::Err("", "duplicate entry"),
        ),
        case(
            "an empty peers key, then items under another one",
            doc(&format!("peers:\nmetrics: {{ listen: \"127.0.0.1:9586\" }}\n{one}")),
            Via::Whole,
            Expect::Err("", "duplicate entry"),
        ),
        case(
            "peers: [] after the items",
            doc(&format!("{one}peers: []\n")),
            Via::Whole,
            Expect::Err("", "duplicate entry"),
        ),
        case(
            "an item less indented than the first",
            doc("peers:\n    - { public_key: \"@K0@\" }\n  - { public_key: \"@K1@\" }\n"),
            Via::Whole,
            Expect::Any,
        ),
        case(
            "an item more indented than the first",
            doc("peers:\n  - { public_key: \"@K0@\" }\n   - { public_key: \"@K1@\" }\n"),
            Via::Whole,
            Expect::Any,
        ),
        case(
            "a key less indented than the first",
            doc("peers:\n  - public_key: \"@K0@\"\n   allowed_ips: []\n"),
            Via::Whole,
            Expect::Any,
        ),
        case(
            "a key more indented than the first",
            doc("peers:\n  - public_key: \"@K0@\"\n     allowed_ips: []\n"),
            Via::Whole,
            Expect::Any,
        ),
        case(
            "content indented under peers: before the items",
            doc("peers:\n  x: 1\n  - { public_key: \"@K0@\" }\n"),
            Via::Whole,
            Expect::Err("", "not valid YAML"),
        ),
        case(
            "a YAML syntax error in an item",
            doc("peers:\n  - public_key: \"@K0@\" x\n"),
            Via::Whole,
            Expect::Err("", "not valid YAML"),
        ),
        case(
            "an unclosed flow mapping",
            doc("peers:\n  - { public_key: \"@K0@\"\n"),
            Via::Whole,
            Expect::Err("", "not valid YAML"),
        ),
        case(
            "a structure error in the front, a value error in an item",
            doc_with(
                "dpdk:",
                "dpkd: {}\ndpdk:",
                "peers:\n  - { public_key: \"@K0@x\" }\n",
            ),
            Via::Whole,
            Expect::Err("dpkd", "unknown key"),
        ),
        case(
            "a structure error in a later item, a value error in an earlier one",
            doc("peers:
  - { public_key: \"@K0@x\" }
  - { public_key: \"@K1@\", allowed_ips: [\"198.18.1.0\"] }
  - { public_key: \"@K2@\", endpoint: \"198.19.0.1:1\", foo: 1 }
"),
            Via::Whole,
            Expect::Err("peers[2].foo", "unknown key"),
        ),
        case(
            "a structure error after the items",
            doc("peers:\n  - { public_key: \"@K0@x\" }\nmetrics: { listen: \"127.0.0.1:1\", path: /m }\n"),
            Via::Whole,
            Expect::Err("metrics.path", "unknown key"),
        ),
        case(
            "an empty text",
            String::new(),
            Via::Whole,
            Expect::Err("", "the configuration is empty"),
        ),
        case(
            "only peers",
            "peers:\n  - { public_key: \"@K0@\" }\n".to_string(),
            Via::Whole,
            Expect::Err("dpdk", "is required"),
        ),
    ];
    check_corpus("whole", &cases);
}

/// Scalars at the edges of what the item parser reads: what YAML makes of a plain or
/// quoted scalar followed by `#` without a space, plain scalars YAML reads as numbers,
/// booleans or null, numbers in other notations. Reading by parts takes whichever path
/// it likes, but must end where whole reading does.
#[test]
fn scalars_at_the_edges_of_the_subset_read_as_whole() {
    let one = |line: &str| {
        doc(&format!(
            "peers:\n  - {{ public_key: \"@K1@\", allowed_ips: [\"198.18.9.0/24\"] }}\n  - public_key: \"@K0@\"\n    {line}\n  - {{ public_key: \"@K2@\" }}\n"
        ))
    };
    let mut lines: Vec<String> = [
        "allowed_ips: [\"198.18.1.0/24\"]#c",
        "allowed_ips: [\"198.18.1.0/24\"] #c",
        "allowed_ips: [198.18.1.0/24#c]",
        "allowed_ips: [198.18.1.0/24 #c]",
        "allowed_ips: [\"198.18.1.0/24\"#c]",
        "allowed_ips: [198.18.1.0/24, ]",
        "allowed_ips: [ , 198.18.1.0/24]",
        "allowed_ips: [ ]",
        "allowed_ips: []#c",
        "allowed_ips: [] # c",
        "allowed_ips:\n      - 198.18.1.0/24#c",
        "allowed_ips:\n      - \"198.18.1.0/24\"#c",
        "allowed_ips:\n      - 198.18.1.0/24 #c\n      -  198.18.2.0/24",
        "allowed_ips:\n      -\t198.18.1.0/24",
        "allowed_ips:\n      -198.18.1.0/24",
        "allowed_ips:\n      - 198.18.1.0/24\n      - ",
        "allowed_ips:\n      - [198.18.1.0/24]",
        "allowed_ips:\n      - 198.18.1.0/24: x",
        "allowed_ips:\n      - 198.18.1.0/24:x",
        "allowed_ips:#c",
        "allowed_ips: #c\n      - 198.18.1.0/24",
        "endpoint: 198.19.0.1:51820#c",
        "endpoint: \"198.19.0.1:51820\"#c",
        "endpoint: 198.19.0.1:51820:",
        "endpoint: :198.19.0.1",
        "endpoint: 198.19.0.1:51820 : x",
        "endpoint: \"a: b\"",
        "endpoint: 'it''s:1'",
        "endpoint: \"\\u0031.2.3.4:5\"",
        "endpoint: true",
        "endpoint: ~",
        "endpoint: null",
        "endpoint: 1.5",
        "endpoint: 0x1F",
        "endpoint: .inf",
        "endpoint: 12345",
        "endpoint: \"12345\"",
        "endpoint: 1:2:3",
        "endpoint: 190:20:30",
        "endpoint: 2001:2::1",
        "endpoint: =",
        "endpoint: a=",
        "endpoint: -a:1",
        "preshared_key_file: peer.psk",
        "preshared_key_file: ./peer.psk",
        "preshared_key_file: peer.psk#c",
        "preshared_key_file: ~/peer.psk",
        "preshared_key: @PSK@#c",
        "preshared_key: \"@PSK@\" # c \"quoted\" [x] {y} &z *w",
        "persistent_keepalive: 25#c",
        "persistent_keepalive: 25 #c",
        "persistent_keepalive: 010",
        "persistent_keepalive: 007",
        "persistent_keepalive: 0",
        "persistent_keepalive: +25",
        "persistent_keepalive: -1",
        "persistent_keepalive: -0",
        "persistent_keepalive: 25.0",
        "persistent_keepalive: 1_0",
        "persistent_keepalive: 0b11",
        "persistent_keepalive: 0o17",
        "persistent_keepalive: 1e1",
        "persistent_keepalive: 123456789",
        "persistent_keepalive: 1234567890",
        "persistent_keepalive: 99999999999999999999",
        "persistent_keepalive: \"25\"",
        "persistent_keepalive: 25:",
        "persistent_keepalive: 2:5",
        "persistent_keepalive:",
        "persistent_keepalive: ",
        "public_key : \"@K3@\"",
        "public_key:\"@K3@\"",
        "Public_Key: \"@K3@\"",
        "endpoint:\t198.19.0.1:1",
        "endpoint: 198.19.0.1:1\t",
        "  endpoint: 198.19.0.1:1",
        "endpoint: 198.19.0.1:1\n      more",
        "endpoint: 198.19.0.1:1\n     more",
        "endpoint: 198.19.0.1:1\n  # less indented comment\n    allowed_ips: []",
        "endpoint: 198.19.0.1:1\n\n\n    allowed_ips: []",
        "endpoint: |\n      198.19.0.1:1",
        "endpoint: >\n      198.19.0.1:1\n",
        "endpoint: \"198.19.0.1:1\" \"x\"",
        "endpoint: [198.19.0.1:1]",
        "endpoint: {a: b}",
        "endpoint: !!str 198.19.0.1:1",
        "? endpoint\n    : 198.19.0.1:1",
    ]
    .iter()
    .map(|line| line.to_string())
    .collect();
    // And the same in flow mappings.
    for value in ["198.18.1.0/24#c", "\"198.18.1.0/24\"#c", "198.18.1.0/24 #c"] {
        lines.push(format!(
            "allowed_ips: []\n  - {{ public_key: \"@K3@\", allowed_ips: [{value}] }}"
        ));
    }
    for tail in ["}#c", "} #c", "}}", "},", "} x", "}  ", "}:", ",}"] {
        lines.push(format!(
            "allowed_ips: []\n  - {{ public_key: \"@K3@\" {tail}"
        ));
    }
    let dir = Scratch::new("edges");
    dir.write("peer.psk", &format!("{PSK}\n"));
    let (mut by_parts, mut whole) = (0, 0);
    for line in &lines {
        let case = case(format!("{line:?}"), one(line), Via::Any, Expect::Any);
        if source::parse_split(&fill(&case.text, &dir.0), &dir.0).is_some() {
            by_parts += 1;
        } else {
            whole += 1;
        }
        check_case(&case, &dir.0);
    }
    assert!(
        by_parts > 20 && whole > 20,
        "{by_parts} read by parts, {whole} whole"
    );
}

/// Mistakes in the values, alone and together: reading by parts finds the same first
/// one.
#[test]
fn errors_by_parts_are_those_of_whole_reading() {
    let v4_outside = |peers: &str| {
        doc_with(
            "[\"198.19.0.2/24\", \"2001:2:0:1::2/64\"]",
            "[\"198.19.0.2/24\"]",
            peers,
        )
    };
    let peer = |line: &str| {
        doc(&format!(
            "peers:\n  - {{ public_key: \"@K0@\", allowed_ips: [\"198.18.1.0/24\"] }}\n  - public_key: \"@K1@\"\n    {line}\n"
        ))
    };
    let mut cases = vec![
        case(
            "a key one character short",
            doc("peers:\n  - { public_key: \"@K0@\" }\n  - { public_key: \"y5UiRTv21z13y1slCElewt5wrpmWPIXcYT/8soAPEF\" }\n"),
            Via::Items,
            Expect::Err("peers[1].public_key", "42 characters where a key has 44"),
        ),
        case(
            "a bad character in a key",
            doc("peers:\n  - public_key: y5UiRTv21z13y1slCElewt5wr.mWPIXcYT/8soAPEFk=\n"),
            Via::Items,
            Expect::Err("peers[0].public_key", "not valid base64 (bad character at position 26)"),
        ),
        case(
            "an all-zero key",
            doc("peers:\n  - public_key: \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n"),
            Via::Items,
            Expect::Err("peers[0].public_key", "all zeros"),
        ),
        case(
            "an empty key",
            doc("peers:\n  - public_key: \"\"\n"),
            Via::Items,
            Expect::Err("peers[0].public_key", "0 characters"),
        ),
        case(
            "the same key twice",
            doc("peers:
  - { public_key: \"@K0@\", allowed_ips: [\"198.18.1.0/24\"] }
  - { public_key: \"@K1@\", allowed_ips: [\"198.18.2.0/24\"] }
  - public_key: @K0@
    allowed_ips: [\"198.18.3.0/24\"]
"),
            Via::Items,
            Expect::Err("peers[2].public_key", "is also the key of peers[0]"),
        ),
        case(
            "the gateway's own key",
            doc("peers:\n  - { public_key: \"@K0@\" }\n  - { public_key: \"@GW_PUB@\" }\n"),
            Via::Items,
            Expect::Err("peers[1].public_key", "is the gateway's own public key"),
        ),
        case(
            "a network of another peer",
            doc("peers:
  - { public_key: \"@K0@\", allowed_ips: [\"198.18.1.0/24\", \"2001:2:0:1::/64\"] }
  - { public_key: \"@K1@\", allowed_ips: [\"198.18.2.0/24\"] }
  - public_key: \"@K2@\"
    allowed_ips:
      - 198.18.3.0/24
      - 2001:2:0:1::7/64
"),
            Via::Items,
            Expect::Err(
                "peers[2].allowed_ips[1]",
                "2001:2:0:1::7/64 (network 2001:2:0:1::/64) is already an allowed IP of peers[0] (allowed_ips[1])",
            ),
        ),
        case(
            "a network listed twice by one peer",
            doc("peers:\n  - { public_key: \"@K0@\", allowed_ips: [\"198.18.7.0/24\", \"198.18.7.9/24\"] }\n"),
            Via::Items,
            Expect::Err("peers[0].allowed_ips[1]", "listed twice (also allowed_ips[0])"),
        ),
        case(
            "a network without a length",
            peer("allowed_ips: [\"198.18.2.0\"]"),
            Via::Items,
            Expect::Err("peers[1].allowed_ips[0]", "has no prefix length"),
        ),
        case(
            "a network too long",
            peer("allowed_ips:\n      - 198.18.2.0/24\n      - 198.18.2.0/33"),
            Via::Items,
            Expect::Err("peers[1].allowed_ips[1]", ""),
        ),
        case(
            "an IPv6 network too long",
            peer("allowed_ips: [\"2001:2::/129\"]"),
            Via::Items,
            Expect::Err("peers[1].allowed_ips[0]", ""),
        ),
        case(
            "a network that is no address",
            peer("allowed_ips: [garbage/24]"),
            Via::Items,
            Expect::Err("peers[1].allowed_ips[0]", ""),
        ),
        case(
            "a keepalive of 0",
            peer("persistent_keepalive: 0"),
            Via::Items,
            Expect::Err("peers[1].persistent_keepalive", "must be between 1 and 65535, got 0"),
        ),
        case(
            "a keepalive of 65536",
            peer("persistent_keepalive: 65536"),
            Via::Items,
            Expect::Err("peers[1].persistent_keepalive", "leave the key out"),
        ),
        case(
            "a keepalive of nine digits",
            peer("persistent_keepalive: 999999999"),
            Via::Items,
            Expect::Err("peers[1].persistent_keepalive", "got 999999999"),
        ),
        case(
            "a keepalive of ten digits",
            peer("persistent_keepalive: 9999999999"),
            Via::Alone,
            Expect::Err("peers[1].persistent_keepalive", "got 9999999999"),
        ),
        case(
            "a host name for an endpoint",
            peer("endpoint: vpn.example.net:51820"),
            Via::Items,
            Expect::Err("peers[1].endpoint", "host names are not resolved"),
        ),
        case(
            "an endpoint without a port",
            peer("endpoint: \"198.19.0.1\""),
            Via::Items,
            Expect::Err("peers[1].endpoint", "has no port (write 198.19.0.1:51820)"),
        ),
        case(
            "an endpoint on port 0",
            peer("endpoint: 198.19.0.1:0"),
            Via::Items,
            Expect::Err("peers[1].endpoint", "has port 0"),
        ),
        case(
            "a multicast endpoint",
            peer("endpoint: \"[ff02::1]:51820\""),
            Via::Items,
            Expect::Err("peers[1].endpoint", "not a peer's unicast address"),
        ),
        case(
            "a loopback endpoint",
            peer("endpoint: 127.0.0.1:51820"),
            Via::Items,
            Expect::Err("peers[1].endpoint", "not a peer's unicast address"),
        ),
        case(
            "what could be a base-60 number",
            peer("endpoint: 1:30"),
            Via::Items,
            Expect::Err("peers[1].endpoint", "is not IP:port"),
        ),
        case(
            "an IPv6 endpoint with IPv4 outside only",
            v4_outside("peers:\n  - { public_key: \"@K0@\" }\n  - { public_key: \"@K1@\", endpoint: \"[2001:2::1]:51820\" }\n"),
            Via::Items,
            Expect::Err("peers[1].endpoint", "is IPv6 but ports.outside has no IPv6 address"),
        ),
        case(
            "a bad inline preshared key",
            peer("preshared_key: \"AAAA\""),
            Via::Items,
            Expect::Err("peers[1].preshared_key", "4 characters"),
        ),
        case(
            "a missing preshared key file",
            peer("preshared_key_file: ./no-such.psk"),
            Via::Items,
            Expect::Err("peers[1].preshared_key_file", "no-such.psk: No such file or directory"),
        ),
        case(
            "a preshared key file with a bad key",
            peer("preshared_key_file: \"bad.psk\""),
            Via::Items,
            Expect::Err("peers[1].preshared_key_file", "bad.psk: 4 characters"),
        ),
        case(
            "an empty preshared key file",
            peer("preshared_key_file: \"empty.psk\""),
            Via::Items,
            Expect::Err("peers[1].preshared_key_file", "the file is empty"),
        ),
        case(
            "an empty preshared key file name",
            peer("preshared_key_file: \"\""),
            Via::Items,
            Expect::Err("peers[1].preshared_key_file", "is empty"),
        ),
        case(
            "an inline preshared key and a file",
            peer("preshared_key: \"@PSK@\"\n    preshared_key_file: ./peer.psk"),
            Via::Items,
            Expect::Err("peers[1].preshared_key_file", "not both"),
        ),
        case(
            "an error in the front and in an item: the front's first",
            doc_with(
                "private_key: \"@GW_PRIV@\"",
                "private_key: \"@GW_PRIV@\"\n  listen_port: 0",
                "peers:\n  - { public_key: \"@K0@x\" }\n",
            ),
            Via::Items,
            Expect::Err("wireguard.listen_port", "must be between 1 and 65535"),
        ),
        case(
            "an error in the ports and a duplicate key: the ports' first",
            doc_with(
                "addresses: [\"198.18.2.1/24\"]",
                "addresses: []",
                "peers:\n  - { public_key: \"@K0@\" }\n  - { public_key: \"@K0@\" }\n",
            ),
            Via::Items,
            Expect::Err("ports.inside.addresses", "lists no address"),
        ),
        case(
            "a bad gateway key and the gateway's key as a peer",
            doc_with(
                "private_key: \"@GW_PRIV@\"",
                "private_key: \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"",
                "peers:\n  - { public_key: \"@GW_PUB@\" }\n",
            ),
            Via::Items,
            Expect::Err("wireguard.private_key", "all zeros"),
        ),
        case(
            "an error in an item and after the items: the item's first",
            doc("peers:\n  - { public_key: \"@K0@\", endpoint: \"198.19.0.1\" }\ncrypto: { backend: cryptodev }\nmetrics: { listen: \"localhost:1\" }\n"),
            Via::Items,
            Expect::Err("peers[0].endpoint", "has no port"),
        ),
        case(
            "an error after the items only",
            doc("peers:\n  - { public_key: \"@K0@\" }\nmetrics: { listen: \"localhost:1\" }\n"),
            Via::Items,
            Expect::Err("metrics.listen", "host names are not resolved"),
        ),
        case(
            "an MTU too small for the IPv6 of a peer",
            doc_with(
                "private_key: \"@GW_PRIV@\"",
                "private_key: \"@GW_PRIV@\"\n  mtu: 1279",
                "peers:
  - { public_key: \"@K0@\", allowed_ips: [\"198.18.1.0/24\"] }
  - { public_key: \"@K1@\", allowed_ips: [\"198.18.2.0/24\", \"2001:2:0:9::/64\"] }
  - { public_key: \"@K2@\", allowed_ips: [\"2001:2:0:10::/64\"] }
",
            ),
            Via::Items,
            Expect::Err("wireguard.mtu", "IPv6 is carried (peers[1].allowed_ips[1])"),
        ),
        case(
            "a claim error first, a value error after it",
            doc("peers:
  - { public_key: \"@K0@\", allowed_ips: [\"198.18.1.0/24\"] }
  - { public_key: \"@K0@\", allowed_ips: [\"198.18.2.0/24\"] }
  - { public_key: \"@K2@\", allowed_ips: [\"198.18.1.0/24\"] }
  - { public_key: \"@K3@\", allowed_ips: [\"198.18.4.0\"] }
"),
            Via::Items,
            Expect::Err("peers[1].public_key", "is also the key of peers[0]"),
        ),
        case(
            "a value error first, a claim error after it",
            doc("peers:
  - { public_key: \"@K0@\", allowed_ips: [\"198.18.1.0/24\"] }
  - { public_key: \"@K1@\", endpoint: \"198.19.0.1:0\" }
  - { public_key: \"@K2@\", allowed_ips: [\"198.18.1.0/24\"] }
  - { public_key: \"@K0@\" }
"),
            Via::Items,
            Expect::Err("peers[1].endpoint", "has port 0"),
        ),
        case(
            "a network claim error first, a key claim error after it",
            doc("peers:
  - { public_key: \"@K0@\", allowed_ips: [\"198.18.1.0/24\"] }
  - { public_key: \"@K1@\", allowed_ips: [\"198.18.2.0/24\", \"198.18.1.0/24\"] }
  - { public_key: \"@K0@\", allowed_ips: [\"198.18.3.0/24\"] }
"),
            Via::Items,
            Expect::Err(
                "peers[1].allowed_ips[1]",
                "198.18.1.0/24 is already an allowed IP of peers[0] (allowed_ips[0])",
            ),
        ),
        case(
            "an error in an item read alone, then in an item parsed",
            doc("peers:
  - { public_key: \"@K0@\" }
  - public_key: '@K1@'
    endpoint: 'vpn:1'
  - { public_key: \"@K2@\", endpoint: \"198.19.0.1\" }
"),
            Via::Alone,
            Expect::Err("peers[1].endpoint", "host names are not resolved"),
        ),
        case(
            "a multi-line plain endpoint",
            doc("peers:\n  - public_key: \"@K0@\"\n    endpoint: 198.19.0.1:51820\n      x\n"),
            Via::Alone,
            Expect::Err("peers[0].endpoint", "is not IP:port"),
        ),
    ];
    // Claims against one of a hundred earlier peers, which the error must name.
    let many: String = (0..100)
        .map(|i| {
            format!(
                "  - {{ public_key: \"{}\", allowed_ips: [\"198.19.{}.0/24\"] }}\n",
                key_of(100 + i),
                i
            )
        })
        .collect();
    cases.push(case(
        "a duplicate network after a hundred peers",
        doc(&format!(
            "peers:\n{many}  - public_key: \"@K0@\"\n    allowed_ips:\n      - 198.18.1.0/24\n      - 198.19.57.1/24\n"
        )),
        Via::Items,
        Expect::Err(
            "peers[100].allowed_ips[1]",
            "198.19.57.1/24 (network 198.19.57.0/24) is already an allowed IP of peers[57] (allowed_ips[0])",
        ),
    ));
    cases.push(case(
        "a duplicate key after a hundred peers",
        doc(&format!("peers:\n{many}  - public_key: {}\n", key_of(142))),
        Via::Items,
        Expect::Err("peers[100].public_key", "is also the key of peers[42]"),
    ));
    check_corpus("errors", &cases);
}

/// More peers than the gateway holds: by parts, the count is checked after the front and
/// before any peer, as whole reading checks it (`validate::validate`), and the items are
/// not checked (they all have the same, bad, key). Whole reading itself is not run here:
/// the YAML parser takes seconds over a million items.
#[test]
fn too_many_peers_by_parts() {
    let max = crate::gateway::MAX_PEERS;
    let mut text = fill(&doc("peers:\n"), Path::new("."));
    let item = "- public_key: x=\n";
    text.reserve(item.len() * (max + 1));
    for _ in 0..=max {
        text.push_str(item);
    }
    let split = source::parse_split(&text, Path::new(".")).expect("read by parts");
    let err = split.err().expect("too many peers");
    assert_eq!(Err(err), validate::check_peer_count(max + 1));
}

// ---------------------------------------------------------------------------------------
// Reloads.

/// What a failed reload must leave exactly as it was.
fn snapshot(config: &Config) -> (String, String, Option<usize>) {
    (
        describe(config),
        format!("{:?}", config.source),
        config.source.as_ref().map(|s| Arc::as_ptr(s) as usize),
    )
}

/// Reloads `path` for `previous` and checks the result against a fresh load, and that
/// against whole reading; on failure `previous` must be unchanged. Returns the result
/// and whether it was read by differences.
#[track_caller]
fn check_reload(
    path: &Path,
    previous: &mut Config,
    what: &str,
) -> (Result<Config, ConfigError>, bool) {
    let dir = path.parent().unwrap();
    let text = fs::read_to_string(path).unwrap_or_default();
    let before = snapshot(previous);
    // The same reading on a copy (sharing the source), to see which way it goes.
    let fast = source::reread(&text, dir, &mut previous.clone()).is_some();
    let reloaded = reload(path, previous);
    let loaded = load(path);
    let whole = match fs::metadata(path) {
        Ok(meta) if meta.is_file() => {
            parse_whole(&text, dir)
                .map(|p| p.config)
                .map_err(|mut err| {
                    if err.path.is_empty() {
                        err.path = path.display().to_string();
                    }
                    err
                })
        }
        // Not a file to read: the error is load's own.
        _ => loaded.clone(),
    };
    assert_eq!(
        outcome(&loaded),
        outcome(&whole),
        "{what}: load differs from whole reading\n{text}"
    );
    assert_eq!(
        outcome(&reloaded),
        outcome(&loaded),
        "{what}: reload differs from load (read by differences: {fast})\n{text}"
    );
    match &reloaded {
        Ok(config) => {
            // What the next reload starts from: the same items as a fresh load has.
            assert_eq!(
                format!("{:?}", config.source),
                format!("{:?}", loaded.as_ref().unwrap().source),
                "{what}: reload keeps another source than load\n{text}"
            );
        }
        Err(err) => {
            assert!(!fast, "{what}: read by differences, yet {err}");
            assert_eq!(
                snapshot(previous),
                before,
                "{what}: a failed reload changed the previous configuration"
            );
        }
    }
    (reloaded, fast)
}

/// One peer item as the generators write it: key `key`, networks from `ips`, in one of
/// a few shapes, its `-` in column `indent`.
fn render(key: &str, ips: u64, shape: usize, indent: usize) -> String {
    let i = " ".repeat(indent);
    let v4 = format!("198.18.{}.{}/32", 64 + (ips / 256) % 128, ips % 256);
    let v6 = format!("2001:2:0:1000::{ips:x}/128");
    let n = ips % 250 + 1;
    match shape {
        0 => format!("{i}- {{ public_key: \"{key}\", allowed_ips: [\"{v4}\", \"{v6}\"] }}\n"),
        // An IPv6 endpoint for odd `ips`, without a key file (which would be read again).
        1 if ips % 2 == 1 => format!(
            "{i}- public_key: \"{key}\"   # peer {ips}\n{i}  endpoint: \"[2001:2:0:2::{n:x}]:51820\"\n{i}  allowed_ips: [\"{v4}\"]\n{i}  persistent_keepalive: 25\n"
        ),
        1 => format!(
            "{i}- public_key: \"{key}\"   # peer {ips}\n{i}  endpoint: \"198.19.1.{n}:51820\"\n{i}  allowed_ips: [\"{v4}\"]\n{i}  persistent_keepalive: 25\n"
        ),
        2 => format!(
            "{i}- public_key: {key}\n{i}  preshared_key: \"{PSK}\"\n{i}  allowed_ips:\n{i}    - {v4}\n{i}    - \"{v6}\"   # six\n{i}  # trailing comment\n\n"
        ),
        3 => format!(
            "{i}- allowed_ips:\n{i}  - \"{v6}\"\n{i}  public_key: \"{key}\"\n{i}  preshared_key_file: \"peer{}.psk\"\n{i}  endpoint: \"[2001:2:0:2::{n:x}]:51820\"\n",
            (ips / SHAPES as u64) % 2
        ),
        4 => format!("{i}- public_key: '{key}'\n{i}  allowed_ips: ['{v4}']\n"),
        _ => format!(
            "{i}-   {{public_key: {key} ,allowed_ips: [ {v4} ], persistent_keepalive: 7}}   # {ips}\n"
        ),
    }
}

const SHAPES: usize = 6;

/// The front of the reload tests, by its variable parts.
#[derive(Clone, Debug)]
struct Front {
    listen_port: Option<&'static str>,
    outside_v6: bool,
    mtu: Option<&'static str>,
    /// The gateway's key: `GATEWAY_PRIVATE` inline, or another in the file `gw.key`.
    key_file: bool,
}

impl Front {
    fn text(&self) -> String {
        let mut t = String::from(
            "# the gateway\ndpdk:\n  lcores: { control: 0, workers: [1] }\n\nports:\n  outside:\n    device: \"net_af_xdp0,iface=eth1\"\n",
        );
        if self.outside_v6 {
            t.push_str("    addresses: [\"198.19.0.2/24\", \"2001:2:0:1::2/64\"]\n");
        } else {
            t.push_str("    addresses: [\"198.19.0.2/24\"]\n");
        }
        t.push_str("  inside:\n    device: \"net_af_xdp1,iface=eth2\"\n    addresses: [\"198.18.2.1/24\"]\nwireguard:\n");
        if self.key_file {
            t.push_str("  private_key_file: gw.key\n");
        } else {
            t.push_str(&format!("  private_key: \"{GATEWAY_PRIVATE}\"\n"));
        }
        if let Some(port) = self.listen_port {
            t.push_str(&format!("  listen_port: {port}\n"));
        }
        if let Some(mtu) = self.mtu {
            t.push_str(&format!("  mtu: {mtu}\n"));
        }
        t.push_str("\npeers:   # one per site\n");
        t
    }
}

/// A configuration file as the reload tests edit it, and its key files.
#[derive(Clone)]
struct Model {
    front: Front,
    /// Rendered items with the key id each was made with (edits may garble them).
    items: Vec<(u64, String)>,
    back: String,
    /// Contents of `peer0.psk`, `peer1.psk` and `gw.key`; `None`: no such file.
    files: [Option<String>; 3],
}

const FILES: [&str; 3] = ["peer0.psk", "peer1.psk", "gw.key"];
const BACK: &str = "\ncrypto:\n  backend: software\nmetrics:\n  listen: \"127.0.0.1:9586\"\nuapi: { name: wgdp0 }\n";

impl Model {
    fn text(&self) -> String {
        let mut t = self.front.text();
        for (_, item) in &self.items {
            t.push_str(item);
        }
        t.push_str(&self.back);
        t
    }

    fn write(&self, dir: &Scratch) -> PathBuf {
        for (name, contents) in FILES.iter().zip(&self.files) {
            match contents {
                Some(contents) => {
                    dir.write(name, contents);
                }
                None => {
                    let _ = fs::remove_file(dir.0.join(name));
                }
            }
        }
        dir.write("gateway.yaml", &self.text())
    }
}

/// The private key in `gw.key` in the models: its public key is a peer's in the base.
fn other_private() -> String {
    key_of(999_999)
}

/// A model of `n` peers in all shapes; peer `n / 2` has the public key of
/// `other_private()`, and every peer key `k` is `key_of(k)` otherwise.
fn base_model(n: u64) -> Model {
    let items = (0..n)
        .map(|k| {
            let key = if k == n / 2 {
                public_of(&other_private())
            } else {
                key_of(k)
            };
            (k, render(&key, k, k as usize % SHAPES, 2))
        })
        .collect();
    Model {
        front: Front {
            listen_port: None,
            outside_v6: true,
            mtu: None,
            key_file: false,
        },
        items,
        back: BACK.to_string(),
        files: [
            Some(format!("{PSK}\n")),
            Some(format!("{}\n", key_of(77_777))),
            Some(format!("{}\n", other_private())),
        ],
    }
}

/// A scripted edit of the base model and what it is meant to give.
struct Edit {
    name: &'static str,
    apply: fn(&mut Model),
    /// Whether the reload is meant to be read by differences (only where it succeeds).
    fast: bool,
    expect: Expect,
}

fn edit(name: &'static str, apply: fn(&mut Model), fast: bool, expect: Expect) -> Edit {
    Edit {
        name,
        apply,
        fast,
        expect,
    }
}

fn fresh(k: u64, shape: usize) -> (u64, String) {
    (k, render(&key_of(k), k, shape, 2))
}

#[test]
fn reload_after_each_kind_of_edit_is_load() {
    let edits = [
        edit("nothing changed", |_| {}, true, Expect::Ok),
        edit(
            "one peer's networks changed in the middle",
            |m| m.items[5] = (5, render(&key_of(5), 500, 5 % SHAPES, 2)),
            true,
            Expect::Ok,
        ),
        edit(
            "a peer added at the start",
            |m| m.items.insert(0, fresh(100, 0)),
            true,
            Expect::Ok,
        ),
        edit(
            "a peer added in the middle",
            |m| m.items.insert(4, fresh(101, 1)),
            true,
            Expect::Ok,
        ),
        edit(
            "a peer added at the end",
            |m| m.items.push(fresh(102, 2)),
            true,
            Expect::Ok,
        ),
        edit(
            "a copy of a peer's item added after it, a new key",
            |m| {
                let copy = m.items[3]
                    .1
                    .replace(&key_of(3), &key_of(103))
                    .replace("::3/", "::103/")
                    .replace(".3/", ".103/");
                m.items.insert(4, (103, copy));
            },
            true,
            Expect::Ok,
        ),
        edit(
            "the first peer removed",
            |m| {
                m.items.remove(0);
            },
            true,
            Expect::Ok,
        ),
        edit(
            "a middle peer removed",
            |m| {
                m.items.remove(4);
            },
            true,
            Expect::Ok,
        ),
        edit(
            "the last peer removed",
            |m| {
                m.items.pop();
            },
            true,
            Expect::Ok,
        ),
        edit(
            "two peers swapped",
            |m| m.items.swap(2, 7),
            true,
            Expect::Ok,
        ),
        edit(
            "the first and the last swapped",
            |m| {
                let last = m.items.len() - 1;
                m.items.swap(0, last);
            },
            true,
            Expect::Ok,
        ),
        edit(
            "the listen port changed",
            |m| m.front.listen_port = Some("51821"),
            true,
            Expect::Ok,
        ),
        edit(
            "a bad listen port",
            |m| m.front.listen_port = Some("65536"),
            false,
            Expect::Err("wireguard.listen_port", "must be between 1 and 65535"),
        ),
        edit(
            "IPv6 gone from the outside port, which a kept peer's endpoint needs",
            |m| m.front.outside_v6 = false,
            false,
            Expect::Err(
                "peers[1].endpoint",
                "is IPv6 but ports.outside has no IPv6 address",
            ),
        ),
        edit(
            "IPv6 gone from the outside port, which a kept peer without a key file needs",
            |m| {
                // Items naming a key file are read again in any case; these are not.
                m.items
                    .retain(|(_, item)| !item.contains("preshared_key_file"));
                m.front.outside_v6 = false;
            },
            false,
            Expect::Err(
                "peers[1].endpoint",
                "is IPv6 but ports.outside has no IPv6 address",
            ),
        ),
        edit(
            "IPv6 gone from the outside port, and the peers that need it",
            |m| {
                m.front.outside_v6 = false;
                m.items.retain(|(_, item)| !item.contains("]:51820"));
            },
            true,
            Expect::Ok,
        ),
        edit(
            "IPv6 gone from the outside port, a new peer needs it",
            |m| {
                m.front.outside_v6 = false;
                m.items.retain(|(_, item)| !item.contains("]:51820"));
                m.items.insert(1, fresh(104, 3));
            },
            false,
            Expect::Err(
                "peers[1].endpoint",
                "is IPv6 but ports.outside has no IPv6 address",
            ),
        ),
        edit(
            "an MTU too small for the IPv6 of kept peers",
            |m| m.front.mtu = Some("1279"),
            false,
            Expect::Err("wireguard.mtu", "IPv6 is carried (peers[0].allowed_ips[1])"),
        ),
        edit(
            "an MTU too small, the first IPv6 peer removed",
            |m| {
                m.front.mtu = Some("1279");
                m.items.remove(0);
            },
            false,
            Expect::Err("wireguard.mtu", "IPv6 is carried (peers[1].allowed_ips[1])"),
        ),
        edit(
            "a new peer with the key of a kept one",
            |m| m.items.insert(2, (7, render(&key_of(7), 105, 0, 2))),
            false,
            Expect::Err("peers[8].public_key", "is also the key of peers[2]"),
        ),
        edit(
            "a changed peer with the key of a kept one before it",
            |m| m.items[8] = (1, render(&key_of(1), 8, 2, 2)),
            false,
            Expect::Err("peers[8].public_key", "is also the key of peers[1]"),
        ),
        edit(
            "a new peer with the network of a kept one",
            |m| m.items.push((106, render(&key_of(106), 4, 0, 2))),
            false,
            Expect::Err(
                "peers[12].allowed_ips[0]",
                "is already an allowed IP of peers[4] (allowed_ips[0])",
            ),
        ),
        edit(
            "a peer takes the network another gives up",
            |m| {
                m.items[1] = (1, render(&key_of(1), 200, 1, 2));
                m.items[9] = (9, render(&key_of(9), 1, 1, 2));
            },
            true,
            Expect::Ok,
        ),
        edit(
            "a peer takes the key another gives up",
            |m| {
                m.items[1] = (201, render(&key_of(201), 1, 1, 2));
                m.items[9] = (1, render(&key_of(1), 9, 1, 2));
            },
            true,
            Expect::Ok,
        ),
        edit(
            "the gateway's own key as a new peer",
            |m| m.items.insert(3, (107, render(GATEWAY_PUBLIC, 107, 0, 2))),
            false,
            Expect::Err("peers[3].public_key", "is the gateway's own public key"),
        ),
        edit(
            "the gateway's key changed to a kept peer's",
            |m| m.front.key_file = true,
            false,
            Expect::Err("peers[6].public_key", "is the gateway's own public key"),
        ),
        edit(
            "the gateway's key changed, that peer removed",
            |m| {
                m.front.key_file = true;
                m.items.remove(6);
            },
            true,
            Expect::Ok,
        ),
        edit(
            "a preshared key file's content changed",
            |m| m.files[1] = Some(format!("{PSK}\n")),
            true,
            Expect::Ok,
        ),
        edit(
            "a preshared key file made bad",
            |m| m.files[0] = Some("not a key\n".into()),
            false,
            Expect::Err("peers[3].preshared_key_file", "9 characters"),
        ),
        edit(
            "a preshared key file removed",
            |m| m.files[1] = None,
            false,
            Expect::Err("peers[9].preshared_key_file", "No such file or directory"),
        ),
        edit("every peer removed", |m| m.items.clear(), true, Expect::Ok),
        edit(
            "every peer removed, and what follows them",
            |m| {
                m.items.clear();
                m.back.clear();
            },
            true,
            Expect::Ok,
        ),
        edit(
            "what follows the peers changed",
            |m| m.back = m.back.replace("9586", "9587"),
            true,
            Expect::Ok,
        ),
        edit(
            "what follows the peers made bad",
            |m| m.back = m.back.replace("127.0.0.1:9586", "localhost:9586"),
            false,
            Expect::Err("metrics.listen", "host names are not resolved"),
        ),
        edit(
            "every item indented by two more",
            |m| {
                for (_, item) in &mut m.items {
                    *item = indent_item(item, 2);
                }
            },
            true,
            Expect::Ok,
        ),
        edit(
            "every item indented by two less",
            |m| {
                for (_, item) in &mut m.items {
                    *item = item
                        .split_inclusive('\n')
                        .map(|line| line.strip_prefix("  ").unwrap_or(line))
                        .collect();
                }
            },
            true,
            Expect::Ok,
        ),
        edit(
            "one item indented by two more",
            |m| m.items[4].1 = indent_item(&m.items[4].1, 2),
            false,
            Expect::Any,
        ),
        edit(
            "one item's keys indented by one more",
            |m| m.items[2].1 = m.items[2].1.replace("\n  ", "\n   "),
            false,
            Expect::Any,
        ),
        edit(
            "an item that opens a string the next one closes",
            |m| m.items[4].1 = m.items[4].1.replacen("'\n", "\n", 1),
            false,
            Expect::Any,
        ),
        edit(
            "a comment line in column 0 between items",
            |m| m.items[3].1.push_str("# between\n"),
            true,
            Expect::Ok,
        ),
        edit(
            "a key after the items in column 0",
            |m| m.items[3].1.push_str("metrics: {}\n"),
            false,
            Expect::Any,
        ),
        edit(
            "the peers: line changed",
            |m| m.front.listen_port = Some("1\npeers: []\nx:"),
            false,
            Expect::Any,
        ),
    ];
    let dir = Scratch::new("reload-edits");
    let base = base_model(12);
    for e in &edits {
        let path = base.write(&dir);
        let mut previous = load(&path).unwrap_or_else(|err| panic!("base: {err}"));
        assert!(previous.source.is_some(), "the base is read by parts");
        let mut model = base.clone();
        (e.apply)(&mut model);
        model.write(&dir);
        let (result, fast) = check_reload(&path, &mut previous, e.name);
        let name = e.name;
        match (e.expect, &result) {
            (Expect::Ok, Ok(_)) | (Expect::Any, _) => {}
            (Expect::Err(path, reason), Err(err)) => {
                assert_eq!(err.path, path, "{name}: wrong key path in {err:?}");
                assert!(
                    err.reason.contains(reason),
                    "{name}: {err:?} lacks {reason:?}"
                );
            }
            (expect, got) => panic!(
                "{name}: expected {expect:?}, got {:?}\n{}",
                got.as_ref().map(|_| ()),
                model.text()
            ),
        }
        assert_eq!(fast, e.fast, "{name}: read by differences: {fast}");

        // A second edit on top of the first: back to the base.
        if let Ok(config) = result {
            previous = config;
        }
        base.write(&dir);
        let (result, _) = check_reload(&path, &mut previous, &format!("{name}, undone"));
        assert!(result.is_ok(), "{name}, undone");
    }
}

fn indent_item(item: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    item.split_inclusive('\n')
        .map(|line| {
            if line.trim().is_empty() {
                line.to_string()
            } else {
                format!("{pad}{line}")
            }
        })
        .collect()
}

/// The outside port loses the address family that kept peers' endpoints need: only the
/// front changes, and no item names a key file (those are read again in any case).
#[test]
fn reload_after_losing_an_address_family_is_load() {
    let dir = Scratch::new("reload-family");
    let mut model = base_model(12);
    model
        .items
        .retain(|(_, item)| !item.contains("preshared_key_file"));
    let path = model.write(&dir);
    let mut previous = load(&path).unwrap();
    let v6_endpoint = |m: &Model| {
        m.items
            .iter()
            .position(|(_, item)| item.contains("]:51820"))
    };
    let first = v6_endpoint(&model).expect("an IPv6 endpoint");

    model.front.outside_v6 = false;
    model.write(&dir);
    let (result, fast) = check_reload(&path, &mut previous, "IPv6 gone");
    let err = result.unwrap_err();
    assert_eq!(err.path, format!("peers[{first}].endpoint"), "{err}");
    assert!(!fast);

    // Without the peers that need it, by differences.
    model.items.retain(|(_, item)| !item.contains("]:51820"));
    model.write(&dir);
    let (result, fast) = check_reload(&path, &mut previous, "IPv6 gone, its peers too");
    previous = result.unwrap();
    assert!(fast);

    // IPv6 back, and a peer that needs it.
    model.front.outside_v6 = true;
    model.items.insert(2, fresh(301, 1));
    model.items.insert(3, fresh(302, 1));
    assert!(model.items[3].1.contains("198.19.1."), "an IPv4 endpoint");
    model.write(&dir);
    let (result, fast) = check_reload(&path, &mut previous, "IPv6 back");
    previous = result.unwrap();
    assert!(fast);

    // IPv4 gone: the peers with IPv4 endpoints need it.
    let text = model.text().replace(
        "[\"198.19.0.2/24\", \"2001:2:0:1::2/64\"]",
        "[\"2001:2:0:1::2/64\"]",
    );
    fs::write(&path, text).unwrap();
    let (result, fast) = check_reload(&path, &mut previous, "IPv4 gone");
    assert_eq!(result.unwrap_err().path, "peers[3].endpoint");
    assert!(!fast);
}

/// A previous configuration that was read whole, or from another directory, gives a
/// full reading.
#[test]
fn reload_without_a_usable_source_is_load() {
    let dir = Scratch::new("reload-source");
    let mut model = base_model(8);
    let path = model.write(&dir);

    // Read whole (an anchor in the front): no source, every reload reads in full.
    let whole_front = model.text().replacen("lcores:", "lcores: &l", 1);
    fs::write(&path, &whole_front).unwrap();
    let mut previous = load(&path).unwrap();
    assert!(previous.source.is_none());
    model.items.remove(0);
    model.write(&dir);
    let (result, fast) = check_reload(&path, &mut previous, "from a whole reading");
    assert!(!fast);
    let mut previous = result.unwrap();
    assert!(previous.source.is_some());
    model.items.remove(0);
    model.write(&dir);
    let (result, fast) = check_reload(&path, &mut previous, "then by differences");
    assert!(fast);
    let mut previous = result.unwrap();

    // The same text in another directory, whose key files differ.
    let other = Scratch::new("reload-source-other");
    model.files[0] = Some(format!("{}\n", key_of(4242)));
    let other_path = model.write(&other);
    let (result, fast) = check_reload(&other_path, &mut previous, "from another directory");
    assert!(!fast);
    let config = result.unwrap();
    let psk = |c: &Config| {
        c.peers
            .iter()
            .filter_map(|p| p.preshared_key.as_ref().map(|k| *k.as_bytes()))
            .collect::<Vec<_>>()
    };
    assert!(psk(&config).contains(&decode_key(&key_of(4242)).unwrap()));

    // A file that cannot be read: the error, and nothing changes.
    let mut previous = config;
    let (result, _) = check_reload(&dir.0.join("missing.yaml"), &mut previous, "a missing file");
    assert!(result.is_err());
}

/// A few hundred seeded random edits of a 50-peer file, each reloaded for the result
/// of the reload before it and compared with a fresh load.
#[test]
fn reload_after_random_edits_is_load() {
    let dir = Scratch::new("reload-random");
    let mut rng = Rng::new(20_261_207);
    let mut model = base_model(50);
    let path = model.write(&dir);
    let mut previous = load(&path).unwrap();
    let mut next_id = 1000u64;
    let (mut ok, mut failed, mut fast_count) = (0, 0, 0);
    const STEPS: usize = 400;
    // The last model that loaded.
    let mut good = model.clone();
    for step in 0..STEPS {
        let mut done = Vec::new();
        let edits = 1 + usize::from(rng.chance(4)) + usize::from(rng.chance(8));
        for _ in 0..edits {
            done.push(random_edit(&mut model, &mut rng, &mut next_id));
        }
        model.write(&dir);
        let what = format!("step {step}: {}", done.join(", "));
        let (result, fast) = check_reload(&path, &mut previous, &what);
        match result {
            Ok(config) => {
                ok += 1;
                fast_count += usize::from(fast);
                previous = config;
                good = model.clone();
            }
            Err(_) => {
                failed += 1;
                // Mostly back to what loaded, sometimes on from the broken text.
                if !rng.chance(4) {
                    model = good.clone();
                }
            }
        }
        // Now and then back to a full, valid file.
        if model.items.len() < 10 || rng.chance(60) {
            model = base_model(50);
        }
    }
    eprintln!("{STEPS} reloads: {ok} loaded ({fast_count} by differences), {failed} refused");
    assert!(ok >= STEPS / 3, "too few reloads succeed: {ok}");
    assert!(failed >= STEPS / 10, "too few reloads fail: {failed}");
    assert!(
        fast_count >= ok / 2,
        "too few reloads by differences: {fast_count} of {ok}"
    );
}

/// Applies one random edit to `model`; says which.
fn random_edit(model: &mut Model, rng: &mut Rng, next_id: &mut u64) -> String {
    let n = model.items.len();
    let shape = rng.below(SHAPES);
    let indent = if rng.chance(20) { 0 } else { 2 };
    let pick = |rng: &mut Rng| rng.below(n.max(1));
    let mut new_id = || {
        *next_id += 1;
        *next_id
    };
    match rng.below(32) {
        0..=4 if n > 0 => {
            let k = pick(rng);
            let id = new_id();
            model.items[k] = (id, render(&key_of(id), id, shape, 2));
            format!("peer {k} replaced")
        }
        5..=8 if n > 0 => {
            let k = pick(rng);
            let key_id = model.items[k].0;
            let ips = new_id();
            model.items[k] = (key_id, render(&key_of(key_id), ips, shape, 2));
            format!("peer {k} rewritten, new networks")
        }
        9..=12 => {
            let k = rng.below(n + 1);
            let id = new_id();
            model
                .items
                .insert(k, (id, render(&key_of(id), id, shape, 2)));
            format!("peer inserted at {k}")
        }
        13..=16 if n > 0 => {
            let k = pick(rng);
            model.items.remove(k);
            format!("peer {k} removed")
        }
        17..=18 if n > 1 => {
            let (a, b) = (pick(rng), pick(rng));
            model.items.swap(a, b);
            format!("peers {a} and {b} swapped")
        }
        19..=20 if n > 0 => {
            let k = pick(rng);
            let mut chars: Vec<char> = model.items[k].1.chars().collect();
            if chars.is_empty() {
                return format!("peer {k} left as it is");
            }
            const SET: &[u8] = b"\"' :-#[]{}\n,/=0aZ&*|>\t.\\";
            let c = char::from(SET[rng.below(SET.len())]);
            let at = rng.below(chars.len());
            let how = match rng.below(3) {
                0 => {
                    chars[at] = c;
                    "replaced"
                }
                1 => {
                    chars.insert(at, c);
                    "inserted"
                }
                _ => {
                    chars.remove(at);
                    "deleted"
                }
            };
            model.items[k].1 = chars.into_iter().collect();
            format!("peer {k}: {c:?} {how} at {at}")
        }
        21 if n > 0 => {
            // Another peer's key or network: refused, unless that one goes too.
            let (k, other) = (pick(rng), pick(rng));
            let id = new_id();
            let (key, ips) = if rng.chance(2) {
                (key_of(model.items[other].0), id)
            } else {
                (key_of(id), model.items[other].0)
            };
            model.items.insert(k, (id, render(&key, ips, shape, 2)));
            format!("peer inserted at {k} with the key or networks of {other}")
        }
        22 if n > 0 => {
            let k = pick(rng);
            let by = 1 + rng.below(2);
            model.items[k].1 = indent_item(&model.items[k].1, by);
            format!("peer {k} indented by {by}")
        }
        23 => {
            let by = 2 * rng.below(3);
            for (_, item) in &mut model.items {
                *item = item
                    .split_inclusive('\n')
                    .map(|line| line.strip_prefix("  ").unwrap_or(line))
                    .collect();
                *item = indent_item(item, by);
            }
            format!("every item indented by {by}")
        }
        24 => {
            let front = &mut model.front;
            match rng.below(4) {
                0 => {
                    let ports = [None, Some("51821"), Some("0"), Some("65535"), Some("1")];
                    front.listen_port = ports[rng.below(ports.len())];
                }
                1 => front.outside_v6 = !front.outside_v6,
                2 => {
                    let mtus = [None, Some("1279"), Some("1400"), Some("575"), Some("1500")];
                    front.mtu = mtus[rng.below(mtus.len())];
                }
                _ => front.key_file = !front.key_file,
            }
            format!("front: {front:?}")
        }
        25 => {
            let f = rng.below(FILES.len());
            model.files[f] = match rng.below(4) {
                0 => None,
                1 => Some("garbage\n".into()),
                2 => Some(format!("{PSK}\n")),
                _ => Some(format!("{}\n", key_of(new_id()))),
            };
            format!("{} rewritten", FILES[f])
        }
        26 => {
            model.back = match rng.below(4) {
                0 => BACK.replace("127.0.0.1:9586", "localhost:1"),
                1 => String::new(),
                2 => BACK.replace("9586", "9587"),
                _ => BACK.to_string(),
            };
            "what follows the peers changed".to_string()
        }
        27..=28 if n > 0 => {
            let k = pick(rng);
            let line = ["# a comment\n", "\n", "   \n", "  # indented comment\n"][rng.below(4)];
            model.items[k].1.push_str(line);
            format!("a blank or comment line after peer {k}")
        }
        29 => {
            let k = rng.below(n + 1);
            let id = new_id();
            model
                .items
                .insert(k, (id, render(&key_of(id), id, shape, indent)));
            format!("peer inserted at {k}, indent {indent}")
        }
        _ => {
            let k = rng.below(n + 1);
            let id = new_id();
            model
                .items
                .insert(k, (id, render(&key_of(id), id, shape, 2)));
            format!("peer inserted at {k}")
        }
    }
}

/// Items of every shape with a few random characters changed, inserted or removed
/// (mostly those that mean something to YAML), each in a document of three peers: by
/// parts as whole, whatever the item has become.
#[test]
fn items_with_random_edits_read_by_parts_as_whole() {
    let dir = Scratch::new("item-edits");
    dir.write("peer0.psk", &format!("{PSK}\n"));
    dir.write("peer1.psk", &format!("{PSK}\n"));
    let steps = 3000;
    let mut rng = Rng::new(7);
    let (mut split_ok, mut split_err, mut whole_only) = (0, 0, 0);
    const SET: &[u8] = b"\"' :-#[]{}\n,/=0aZ&*|>!%@`?.\\ \t~1x";
    for step in 0..steps {
        let shape = rng.below(SHAPES);
        let indent = [0, 2, 2, 4][rng.below(4)];
        let mut chars: Vec<char> = render(&key_of(1), 1, shape, indent).chars().collect();
        for _ in 0..1 + rng.below(3) {
            let c = char::from(SET[rng.below(SET.len())]);
            let at = rng.below(chars.len() + 1);
            match rng.below(3) {
                0 if at < chars.len() => chars[at] = c,
                1 if at < chars.len() => {
                    chars.remove(at);
                }
                _ => chars.insert(at, c),
            }
        }
        let item: String = chars.into_iter().collect();
        let pad = " ".repeat(indent);
        let text = format!(
            "{}peers:\n{pad}- {{ public_key: \"{}\", allowed_ips: [\"198.19.1.0/24\"] }}\n{item}{pad}- {{ public_key: \"{}\" }}\nuapi: {{ name: wgdp0 }}\n",
            FRONT.replace("@GW_PRIV@", GATEWAY_PRIVATE),
            key_of(0),
            key_of(2)
        );
        let whole = parsed_outcome(parse_whole(&text, &dir.0));
        match source::parse_split(&text, &dir.0) {
            Some(split) => {
                let split = parsed_outcome(split);
                assert_eq!(
                    split, whole,
                    "step {step}: by parts differs from whole\n{text}"
                );
                if split.is_ok() {
                    split_ok += 1;
                } else {
                    split_err += 1;
                }
            }
            None => whole_only += 1,
        }
    }
    eprintln!(
        "{steps} items: by parts {split_ok} read, {split_err} refused; {whole_only} read whole"
    );
    assert!(
        split_ok >= steps / 50 && split_err >= steps / 10,
        "{split_ok} {split_err}"
    );
}
