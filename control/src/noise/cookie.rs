//! mac1, mac2 and cookies: the denial-of-service defence of whitepaper section 5.4.4 and
//! 5.4.7, as wireguard-go `device/cookie.go` implements it.
//!
//! Every initiation and response ends in two MACs:
//! - `mac1 := MAC(HASH(LABEL_MAC1 || S_pub_receiver), msg[..len-32])`, which anyone who
//!   knows the receiver's public key can compute. A receiver drops messages whose mac1 is
//!   wrong before any Diffie-Hellman work ([`Identity::verify_mac1`]).
//! - `mac2 := MAC(cookie, msg[..len-16])`, or zeros when the sender holds no cookie
//!   younger than [`COOKIE_REFRESH_TIME`]. The cookie is `MAC(R_secret, source address)`,
//!   a value only the receiver can compute and only the owner of the address can learn.
//!
//! A receiver under load (the caller decides when, e.g. from its handshake queue depth)
//! demands a valid mac2 ([`CookieChecker::verify_mac2`]); a message without one is
//! answered with a cookie reply ([`CookieChecker::create_reply`]) that carries the cookie
//! sealed with `XAEAD(HASH(LABEL_COOKIE || S_pub_receiver), nonce, cookie, mac1)`. The
//! sender opens it ([`PeerHandshake::consume_cookie_reply`]) and its next messages carry
//! mac2. The cookie secret changes every [`COOKIE_REFRESH_TIME`].
//!
//! The source address is an opaque byte string to this module: the caller must build it
//! the same way for the reply and for the check (IP address bytes, then the UDP port).
//!
//! [`Identity::verify_mac1`]: super::Identity::verify_mac1
//! [`PeerHandshake::consume_cookie_reply`]: super::PeerHandshake::consume_cookie_reply

use std::fmt;
use std::time::Duration;

use dataplane::wire::wireguard::{
    classify, CookieReply, Initiation, MessageKind, Response, COOKIE_LEN, COOKIE_REPLY_LEN,
    MAC_LEN, TAG_LEN,
};
use rand_core::{CryptoRng, RngCore};
use x25519_dalek::PublicKey;
use zeroize::Zeroizing;

use super::primitives::{hash, mac, mac_matches, xaead_open, xaead_seal, KEY_LEN, XNONCE_LEN};
use super::{HandshakeError, Identity, COOKIE_REFRESH_TIME, LABEL_COOKIE, LABEL_MAC1};

/// `HASH(LABEL_MAC1 || S_pub)`: the key of mac1 on messages sent to the owner of `S_pub`.
pub(super) fn mac1_key(public: &PublicKey) -> [u8; KEY_LEN] {
    hash(&[LABEL_MAC1, public.as_bytes()])
}

/// `HASH(LABEL_COOKIE || S_pub)`: the key that seals cookie replies sent by the owner of
/// `S_pub`.
pub(super) fn cookie_key(public: &PublicKey) -> [u8; KEY_LEN] {
    hash(&[LABEL_COOKIE, public.as_bytes()])
}

/// The sender index of an initiation or response, the two messages that carry MACs.
fn sender_of_macced(msg: &[u8]) -> Result<u32, HandshakeError> {
    match classify(msg) {
        Ok(MessageKind::Initiation) => Ok(Initiation::new_unchecked(msg).sender()),
        Ok(MessageKind::Response) => Ok(Response::new_unchecked(msg).sender()),
        _ => Err(HandshakeError::Malformed),
    }
}

/// Splits an initiation or response (already checked) into the part mac1 covers, mac1,
/// and mac2. Both messages end with mac1 then mac2, so offsets from the end serve both.
fn split_macs(msg: &[u8]) -> (&[u8], &[u8; MAC_LEN], &[u8; MAC_LEN]) {
    let (body, macs) = msg.split_at(msg.len() - 2 * MAC_LEN);
    let (mac1, mac2) = macs.split_at(MAC_LEN);
    (
        body,
        mac1.try_into().expect("MAC_LEN bytes"),
        mac2.try_into().expect("MAC_LEN bytes"),
    )
}

/// Checks mac1 of an initiation or response addressed to the owner of `mac1_key`.
pub(super) fn verify_mac1(mac1_key: &[u8; KEY_LEN], msg: &[u8]) -> Result<(), HandshakeError> {
    sender_of_macced(msg)?;
    let (body, mac1, _) = split_macs(msg);
    if mac_matches(mac1_key, &[body], mac1) {
        Ok(())
    } else {
        Err(HandshakeError::BadMac1)
    }
}

/// The responder's side: the rotating secret behind cookies. One per interface.
pub struct CookieChecker {
    secret: Zeroizing<[u8; KEY_LEN]>,
    /// When `secret` was drawn; `None` until the first cookie reply, so until then no
    /// mac2 is valid (as in wireguard-go, whose `secretSet` starts at the zero time).
    secret_born: Option<Duration>,
}

impl CookieChecker {
    pub fn new() -> Self {
        CookieChecker {
            secret: Zeroizing::new([0; KEY_LEN]),
            secret_born: None,
        }
    }

    /// The current secret, if it is younger than [`COOKIE_REFRESH_TIME`].
    fn live_secret(&self, now: Duration) -> Option<&[u8; KEY_LEN]> {
        let born = self.secret_born?;
        (now.saturating_sub(born) <= COOKIE_REFRESH_TIME).then_some(&*self.secret)
    }

    /// Checks mac2 of an initiation or response (mac1 already checked) that came from
    /// `source`. Fails with [`HandshakeError::BadMac2`] if mac2 is absent or wrong, or if
    /// no cookie has been handed out with the current secret.
    pub fn verify_mac2(
        &self,
        msg: &[u8],
        source: &[u8],
        now: Duration,
    ) -> Result<(), HandshakeError> {
        sender_of_macced(msg)?;
        let secret = self.live_secret(now).ok_or(HandshakeError::BadMac2)?;
        let cookie = Zeroizing::new(mac(secret, &[source]));
        let (body, mac1, mac2) = split_macs(msg);
        if mac_matches(&*cookie, &[body, mac1], mac2) {
            Ok(())
        } else {
            Err(HandshakeError::BadMac2)
        }
    }

    /// The cookie reply to an initiation or response from `source` (mac1 already checked
    /// with `id`), addressed to the message's sender index. Draws a new secret from `rng`
    /// when the current one is older than [`COOKIE_REFRESH_TIME`].
    pub fn create_reply(
        &mut self,
        id: &Identity,
        msg: &[u8],
        source: &[u8],
        now: Duration,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<[u8; COOKIE_REPLY_LEN], HandshakeError> {
        let sender = sender_of_macced(msg)?;
        if self.live_secret(now).is_none() {
            rng.fill_bytes(&mut *self.secret);
            self.secret_born = Some(now);
        }
        let cookie = Zeroizing::new(mac(&*self.secret, &[source]));
        let (_, mac1, _) = split_macs(msg);

        let mut nonce = [0u8; XNONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut sealed = [0u8; COOKIE_LEN + TAG_LEN];
        // The associated data is the mac1 the sender computed: only the sender of that
        // very message can open the reply.
        xaead_seal(id.cookie_key(), &nonce, &*cookie, mac1, &mut sealed);

        let mut reply = [0u8; COOKIE_REPLY_LEN];
        let mut view = CookieReply::new_unchecked(&mut reply[..]);
        view.set_message_type();
        view.set_receiver(sender);
        view.set_nonce(&nonce);
        view.set_encrypted_cookie(&sealed);
        Ok(reply)
    }
}

impl Default for CookieChecker {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CookieChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieChecker")
            .field("secret", &"<redacted>")
            .field("secret_born", &self.secret_born)
            .finish()
    }
}

/// A cookie received from a peer, and when.
struct Cookie {
    value: Zeroizing<[u8; COOKIE_LEN]>,
    received: Duration,
}

/// The mac1 of the last initiation or response sent to a peer: the associated data of a
/// cookie reply to it.
#[derive(Clone, Copy)]
struct SentMac1 {
    sender_index: u32,
    mac1: [u8; MAC_LEN],
}

/// The sender's side, one per peer (wireguard-go's `CookieGenerator`): the MACs of the
/// messages we send to that peer and the cookie it gave us.
pub(super) struct CookieGenerator {
    mac1_key: [u8; KEY_LEN],
    cookie_key: [u8; KEY_LEN],
    cookie: Option<Cookie>,
    last_sent: Option<SentMac1>,
}

impl CookieGenerator {
    pub(super) fn new(peer: &PublicKey) -> Self {
        CookieGenerator {
            mac1_key: mac1_key(peer),
            cookie_key: cookie_key(peer),
            cookie: None,
            last_sent: None,
        }
    }

    /// Writes mac1, and mac2 if we hold a cookie younger than [`COOKIE_REFRESH_TIME`]
    /// (zeros otherwise), into an initiation or response we are about to send.
    pub(super) fn add_macs(&mut self, msg: &mut [u8], sender_index: u32, now: Duration) {
        let len = msg.len();
        let mac1_at = len - 2 * MAC_LEN;
        let mac2_at = len - MAC_LEN;
        let mac1 = mac(&self.mac1_key, &[&msg[..mac1_at]]);
        msg[mac1_at..mac2_at].copy_from_slice(&mac1);
        self.last_sent = Some(SentMac1 { sender_index, mac1 });

        let mac2 = match &self.cookie {
            Some(cookie) if now.saturating_sub(cookie.received) <= COOKIE_REFRESH_TIME => {
                mac(&*cookie.value, &[&msg[..mac2_at]])
            }
            _ => [0; MAC_LEN],
        };
        msg[mac2_at..].copy_from_slice(&mac2);
    }

    /// Opens a cookie reply to the last message we sent and keeps the cookie for mac2.
    pub(super) fn consume_reply(
        &mut self,
        msg: &[u8],
        now: Duration,
    ) -> Result<(), HandshakeError> {
        let reply = CookieReply::new_checked(msg).map_err(|_| HandshakeError::Malformed)?;
        let sent = self.last_sent.ok_or(HandshakeError::WrongState)?;
        if reply.receiver() != sent.sender_index {
            return Err(HandshakeError::WrongIndex);
        }
        let mut value = Zeroizing::new([0u8; COOKIE_LEN]);
        xaead_open(
            &self.cookie_key,
            &reply.nonce(),
            &reply.encrypted_cookie(),
            &sent.mac1,
            &mut *value,
        )
        .map_err(|_| HandshakeError::DecryptCookie)?;
        self.cookie = Some(Cookie {
            value,
            received: now,
        });
        Ok(())
    }

    /// When the cookie we hold was received, if any.
    pub(super) fn cookie_received(&self) -> Option<Duration> {
        self.cookie.as_ref().map(|cookie| cookie.received)
    }
}
