//! Reading a configuration by parts: the peers one item at a time, and on a reload only
//! the items that changed since the last load.
//!
//! [`parse_split`] reads a text whose layout `layout` recognises: the document without
//! its peer items goes through the YAML parser and serde as a whole (it is small), each
//! item through the item parser (`item`), or if that refuses it, alone through the YAML
//! parser. Whatever it is not certain of (the layout, an item neither reads, any YAML or
//! structure error) gives `None`, and the caller reads the whole text with the YAML
//! parser instead, so that results and error messages are always those of that reading.
//! Checks of values report their error directly: the order of the checks is the same.
//!
//! What a successful load leaves in [`Source`] (the text, where each item is, what the
//! peers claim together) lets [`reread`] read a new version of the file by its
//! differences: the bytes both versions share at their start and at their end contain
//! the items that stay as they are, with their checked [`PeerConfig`]s; the items in
//! between are split and read again, and the checks across peers (keys, networks) are
//! made against what the others claimed. The rest of the document is read again in full,
//! and so are items naming a key file (its content may have changed). Any doubt or error
//! gives `None`, and the caller reads the new text in full.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use super::layout::{self, classify, line_at, Layout, Line};
use super::raw::{RawConfig, RawPeer};
use super::validate::{self, Alone, Claimed, Claims, InOrder, PeerContext};
use super::{item, Config, ConfigError, PeerConfig, PortConfig, Prefix, KEY_LEN};

/// Item flags: the item names a key file, or holds a key inline.
const KEY_FILE: u8 = 1;
const INLINE_KEY: u8 = 2;

/// A loaded configuration's text and what its peers claim, for the next reload.
pub(crate) struct Source {
    text: Zeroizing<String>,
    base_dir: PathBuf,
    kept: Kept,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("bytes", &self.text.len())
            .field("items", &self.kept.layout.starts.len())
            .finish()
    }
}

/// All of [`Source`] but the text: what reading by parts found.
pub(super) struct Kept {
    layout: Layout,
    /// Per item, in file order: `KEY_FILE`, `INLINE_KEY`.
    flags: Vec<u8>,
    claims: Claimed,
    /// The address families of `ports.outside` the endpoints were checked against.
    outside: (bool, bool),
}

impl Kept {
    pub fn into_source(self, text: Zeroizing<String>, base_dir: &Path) -> Source {
        Source {
            text,
            base_dir: base_dir.to_path_buf(),
            kept: self,
        }
    }
}

/// A checked configuration, whether the file holds a secret key itself, and what a
/// reload may reuse.
pub(super) struct Parsed {
    pub config: Config,
    pub inline_secret: bool,
    pub kept: Option<Kept>,
}

fn families(port: &PortConfig) -> (bool, bool) {
    let v4 = port.addresses.iter().any(|a| a.addr.is_ipv4());
    let v6 = port.addresses.iter().any(|a| a.addr.is_ipv6());
    (v4, v6)
}

/// The text of item `p`.
fn item_text<'t>(text: &'t str, layout: &Layout, p: usize) -> &'t str {
    let end = layout.starts.get(p + 1).copied().unwrap_or(layout.end);
    &text[layout.starts[p]..end]
}

/// The document without its items: the peers then read as none.
fn rest(text: &str, first: usize, end: usize) -> Option<(RawConfig, bool)> {
    let mut rest = Zeroizing::new(String::with_capacity(first + text.len() - end));
    rest.push_str(&text[..first]);
    rest.push_str(&text[end..]);
    let value: serde_yaml::Value = serde_yaml::from_str(&rest).ok()?;
    let raw: RawConfig = serde_path_to_error::deserialize(value).ok()?;
    if !raw.peers.is_empty() {
        return None;
    }
    let inline = raw.wireguard.private_key.is_some();
    Some((raw, inline))
}

/// Item `text` read alone by the YAML parser, if its lines are complete in themselves
/// (`layout::clean_line`): then it reads as it does within the document.
fn read_alone(text: &str) -> Option<RawPeer> {
    if !text.split('\n').all(layout::clean_line) {
        return None;
    }
    let value: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    let serde_yaml::Value::Sequence(mut items) = value else {
        return None;
    };
    if items.len() != 1 {
        return None;
    }
    serde::Deserialize::deserialize(items.pop()?).ok()
}

fn flags_of(fields: &item::PeerFields<'_>) -> u8 {
    let mut f = 0;
    if fields.preshared_key_file.is_some() {
        f |= KEY_FILE;
    }
    if fields.preshared_key.is_some() {
        f |= INLINE_KEY;
    }
    f
}

/// Reads item `text` and checks it as peer `p`; `None` if it cannot be read with
/// certainty, `Some(Err)` if a check fails.
fn read_item(
    text: &str,
    indent: usize,
    p: usize,
    cx: Option<&PeerContext<'_>>,
    claims: &mut impl Claims,
    earlier: &[PeerConfig],
) -> Option<(u8, Option<Result<PeerConfig, ConfigError>>)> {
    let mut ips = Vec::new();
    if let Some(fields) = item::parse(text, indent, &mut ips) {
        let checked = cx.map(|cx| validate::peer(p, &fields, &ips, cx, claims, earlier));
        return Some((flags_of(&fields), checked));
    }
    let raw = read_alone(text)?;
    let mut ips = Vec::new();
    let fields = raw.fields(&mut ips);
    let checked = cx.map(|cx| validate::peer(p, &fields, &ips, cx, claims, earlier));
    Some((flags_of(&fields), checked))
}

/// Reads `text` by parts; `None` if its layout is not recognised or a part cannot be
/// read with certainty (the caller then reads it whole).
pub(super) fn parse_split(text: &str, base_dir: &Path) -> Option<Result<Parsed, ConfigError>> {
    let layout = layout::split(text)?;
    let (raw, inline_private) = rest(text, layout.first, layout.end)?;
    let RawConfig {
        dpdk,
        ports,
        wireguard,
        peers: _,
        crypto,
        control_port,
        metrics,
        uapi,
    } = raw;
    let n = layout.starts.len();
    // The first failed check; structure errors in later items still come first (they
    // would in a whole reading, which deserialises everything before checking).
    let mut error = None;
    let front = match validate::front(dpdk, ports, &wireguard, base_dir) {
        Ok(front) => Some(front),
        Err(e) => {
            error = Some(e);
            None
        }
    };
    if error.is_none() {
        error = validate::check_peer_count(n).err();
    }
    let cx = front.as_ref().map(|f| f.context(base_dir));
    // Each peer alone (and every item read: a structure error anywhere comes first),
    // then their claims together.
    let mut peers: Vec<PeerConfig> = Vec::with_capacity(n);
    let mut flags = Vec::with_capacity(n);
    let mut failed = false;
    for p in 0..n {
        let item = item_text(text, &layout, p);
        let cx = cx.as_ref().filter(|_| error.is_none() && !failed);
        let (f, checked) = read_item(item, layout.indent, p, cx, &mut Alone, &[])?;
        flags.push(f);
        match checked {
            Some(Ok(peer)) => peers.push(peer),
            Some(Err(_)) => failed = true,
            None => {}
        }
    }
    if let Some(e) = error {
        return Some(Err(e));
    }
    let cx = cx?;
    let mut claims = if failed { None } else { Claimed::of(&peers) };
    if claims.is_none() {
        // Something failed: the first error is the one checking in order finds.
        let mut in_order = InOrder::default();
        peers.clear();
        for p in 0..n {
            let item = item_text(text, &layout, p);
            let (_, checked) = read_item(item, layout.indent, p, Some(&cx), &mut in_order, &peers)?;
            match checked? {
                Ok(peer) => peers.push(peer),
                Err(e) => return Some(Err(e)),
            }
        }
        claims = Claimed::of(&peers);
    }
    let claims = claims?;
    let front = front?;
    let tail = validate::tail(
        &front,
        &wireguard,
        crypto,
        control_port,
        metrics,
        uapi,
        || validate::ipv6_peer(peers.iter()),
    );
    let tail = match tail {
        Ok(tail) => tail,
        Err(e) => return Some(Err(e)),
    };
    let inline_secret = inline_private || flags.iter().any(|f| f & INLINE_KEY != 0);
    let outside = families(&front.ports.outside);
    let config = validate::assemble(front, tail, peers);
    Some(Ok(Parsed {
        config,
        inline_secret,
        kept: Some(Kept {
            layout,
            flags,
            claims,
            outside,
        }),
    }))
}

/// Claims over those of a previous load: what the items read again give up
/// (`removed`) is free, what they claim is added.
struct Overlay<'a> {
    base: &'a Claimed,
    removed: (HashSet<[u8; KEY_LEN]>, HashSet<Prefix>),
    added: (HashSet<[u8; KEY_LEN]>, HashSet<Prefix>),
}

impl Overlay<'_> {
    fn has_key(&self, key: &[u8; KEY_LEN]) -> bool {
        self.added.0.contains(key) || (self.base.has_key(key) && !self.removed.0.contains(key))
    }
}

impl Claims for Overlay<'_> {
    fn key(&mut self, key: &[u8; KEY_LEN], _: &[PeerConfig]) -> Result<(), usize> {
        if self.has_key(key) {
            return Err(0);
        }
        self.added.0.insert(*key);
        Ok(())
    }

    fn net(
        &mut self,
        net: Prefix,
        _: &[Prefix],
        _: &[PeerConfig],
    ) -> Result<(), (Option<usize>, usize)> {
        let taken = self.added.1.contains(&net)
            || (self.base.has_net(&net) && !self.removed.1.contains(&net));
        if taken {
            return Err((None, 0));
        }
        self.added.1.insert(net);
        Ok(())
    }
}

/// What reading the differences found, before anything of the previous load is
/// taken over.
struct Reread {
    layout: Layout,
    /// Old items `j0..j1` are replaced by `peers` (with `flags`), which start at
    /// `starts` in the new text.
    j0: usize,
    j1: usize,
    peers: Vec<PeerConfig>,
    flags: Vec<u8>,
    claims: Claimed,
    /// Peers outside `j0..j1` read again for their key file: (new index, peer).
    refreshed: Vec<(usize, PeerConfig)>,
    config_parts: (validate::Front, validate::Tail),
    inline_secret: bool,
}

/// Reads `text`, a new version of the file `previous` was loaded from, reusing
/// `previous` for what did not change. `None` if that cannot be done with certainty (no
/// source, another directory, a layout not recognised, any error): the caller then reads
/// the text in full. On success the peers and the source of `previous` have moved into
/// the result; `previous` is to be replaced by it.
pub(super) fn reread(text: &str, base_dir: &Path, previous: &mut Config) -> Option<Parsed> {
    let found = find(text, base_dir, previous)?;
    let Reread {
        layout,
        j0,
        j1,
        peers: new_peers,
        flags: new_flags,
        claims,
        refreshed,
        config_parts: (front, tail),
        inline_secret,
    } = found;
    // Everything checked: take over what the previous load holds.
    let source = previous.source.take()?;
    let mut flags = match Arc::try_unwrap(source) {
        Ok(source) => source.kept.flags,
        Err(shared) => shared.kept.flags.clone(),
    };
    flags.splice(j0..j1, new_flags);
    let mut peers = std::mem::take(&mut previous.peers);
    peers.splice(j0..j1, new_peers);
    for (p, peer) in refreshed {
        peers[p] = peer;
    }
    let outside = families(&front.ports.outside);
    let config = validate::assemble(front, tail, peers);
    Some(Parsed {
        config,
        inline_secret,
        kept: Some(Kept {
            layout,
            flags,
            claims,
            outside,
        }),
    })
}

/// The checking half of [`reread`]: nothing of `previous` changes.
fn find(text: &str, base_dir: &Path, previous: &Config) -> Option<Reread> {
    let source = previous.source.as_deref()?;
    let old = source.text.as_str();
    let kept = &source.kept;
    let lay = &kept.layout;
    let m = lay.starts.len();
    if source.base_dir != base_dir || previous.peers.len() != m {
        return None;
    }
    let (new_bytes, old_bytes) = (text.as_bytes(), old.as_bytes());
    let a = layout::common_prefix(old_bytes, new_bytes);
    let b = layout::common_suffix(old_bytes, new_bytes, old.len().min(text.len()) - a);
    let delta = text.len() as isize - old.len() as isize;
    let shift = |at: usize| at.checked_add_signed(delta);
    let suffix_from = text.len() - b;

    // The lines before the items, always read again.
    let first = layout::front(text)?;
    // The leading old items whose lines, and the line after each (which ends it), all lie
    // in the common prefix stay as they are: all but the last two that start before it.
    let j0 = lay.starts.partition_point(|&s| s < a).saturating_sub(2);
    if j0 > 0 && first != lay.first {
        return None;
    }
    // Split again from there, up to an item that starts where an old one did in the
    // common suffix: from there on the items are the old ones, shifted.
    let (from, indent) = if j0 > 0 {
        (Some(lay.starts[j0]), lay.indent)
    } else {
        match classify(line_at(text, first).0) {
            Line::Entry(indent) if first < text.len() => (Some(first), indent),
            _ => (None, lay.indent),
        }
    };
    let mut j1 = m;
    let (starts, end) = match from {
        Some(from) => layout::items(text, from, indent, |at| {
            if at < suffix_from {
                return false;
            }
            let Some(old_at) = at.checked_add_signed(-delta) else {
                return false;
            };
            match lay.starts[j0..].binary_search(&old_at) {
                Ok(i) => {
                    j1 = j0 + i;
                    true
                }
                Err(_) => false,
            }
        })?,
        None => (Vec::new(), first),
    };
    if j1 < m && indent != lay.indent {
        return None;
    }
    let end = if j1 < m { shift(lay.end)? } else { end };
    // The lines after the items, unless they are those checked at the last load.
    let unchanged_back = j1 < m || (end >= suffix_from && shift(lay.end) == Some(end));
    if !unchanged_back && !layout::back(text, end) {
        return None;
    }
    let window = starts.len();
    let mut all_starts = Vec::with_capacity(j0 + window + (m - j1));
    all_starts.extend_from_slice(&lay.starts[..j0]);
    all_starts.extend_from_slice(&starts);
    for &s in &lay.starts[j1..] {
        all_starts.push(shift(s)?);
    }
    let new_layout = Layout {
        first: all_starts.first().copied().unwrap_or(end),
        starts: all_starts,
        end,
        indent,
    };

    // The rest of the document, read and checked in full.
    let (raw, inline_private) = rest(text, new_layout.first, new_layout.end)?;
    let RawConfig {
        dpdk,
        ports,
        wireguard,
        peers: _,
        crypto,
        control_port,
        metrics,
        uapi,
    } = raw;
    let front = validate::front(dpdk, ports, &wireguard, base_dir).ok()?;
    let count = new_layout.starts.len();
    validate::check_peer_count(count).ok()?;
    let cx = front.context(base_dir);

    // What the replaced items claimed is free again.
    let mut removed = (HashSet::new(), HashSet::new());
    for peer in &previous.peers[j0..j1] {
        removed.0.insert(peer.public_key);
        removed.1.extend(peer.allowed_ips.iter().copied());
    }
    let mut overlay = Overlay {
        base: &kept.claims,
        removed,
        added: (HashSet::new(), HashSet::new()),
    };
    // The gateway's key may have changed.
    if overlay.has_key(cx.own_public_key) {
        return None;
    }
    let mut peers = Vec::with_capacity(window);
    let mut flags = Vec::with_capacity(window);
    for w in 0..window {
        let p = j0 + w;
        let item = item_text(text, &new_layout, p);
        let (f, checked) = read_item(item, indent, p, Some(&cx), &mut overlay, &[])?;
        peers.push(checked?.ok()?);
        flags.push(f);
    }

    // The others stay, unless they hold an endpoint ports.outside can no longer send to
    // or name a key file (read again: it may have changed).
    let kept_peers = || {
        let tail_start = j0 + window;
        previous.peers[..j0].iter().enumerate().chain(
            previous.peers[j1..]
                .iter()
                .enumerate()
                .map(move |(i, peer)| (tail_start + i, peer)),
        )
    };
    let (v4, v6) = families(&front.ports.outside);
    if (kept.outside.0 && !v4) || (kept.outside.1 && !v6) {
        let lost = kept_peers().any(|(_, peer)| {
            peer.endpoint
                .is_some_and(|e| if e.is_ipv4() { !v4 } else { !v6 })
        });
        if lost {
            return None;
        }
    }
    let old_index = |p: usize| if p < j0 { p } else { p - j0 - window + j1 };
    let mut refreshed = Vec::new();
    for (p, _) in kept_peers() {
        if kept.flags[old_index(p)] & KEY_FILE != 0 {
            let item = item_text(text, &new_layout, p);
            let (_, checked) = read_item(item, indent, p, Some(&cx), &mut Alone, &[])?;
            refreshed.push((p, checked?.ok()?));
        }
    }

    let final_peers =
        || kept_peers().chain(peers.iter().enumerate().map(|(w, peer)| (j0 + w, peer)));
    let ipv6_peer = || {
        final_peers()
            .filter_map(|(p, peer)| {
                let i = peer.allowed_ips.iter().position(|ip| !ip.is_ipv4())?;
                Some((p, i))
            })
            .min()
            .map(|(p, i)| format!("peers[{p}].allowed_ips[{i}]"))
    };
    let tail = validate::tail(
        &front,
        &wireguard,
        crypto,
        control_port,
        metrics,
        uapi,
        ipv6_peer,
    )
    .ok()?;
    let inline_secret = inline_private
        || flags.iter().any(|f| f & INLINE_KEY != 0)
        || kept_peers().any(|(p, _)| kept.flags[old_index(p)] & INLINE_KEY != 0);
    let claims = kept.claims.updated(
        (&overlay.removed.0, &overlay.removed.1),
        (&overlay.added.0, &overlay.added.1),
    );
    Some(Reread {
        layout: new_layout,
        j0,
        j1,
        peers,
        flags,
        claims,
        refreshed,
        config_parts: (front, tail),
        inline_secret,
    })
}
