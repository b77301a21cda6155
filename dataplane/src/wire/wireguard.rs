//! WireGuard messages: the payload of the outer UDP datagram (whitepaper section 5.4,
//! wireguard-go `device/noise-protocol.go`).
//!
//! Contract:
//! - Every message starts with a 32-bit little-endian type word: the type in the first
//!   byte, then three reserved zero bytes. wireguard-go reads the word as one `u32`, so a
//!   message whose reserved bytes are not zero is of no known type, and [`classify`] and
//!   every `new_checked` reject it.
//! - A handshake message has exactly one length: [`Initiation`] 148 bytes, [`Response`]
//!   92, [`CookieReply`] 64. A [`Transport`] message has a 16-byte header followed by at
//!   least [`TAG_LEN`] bytes of AEAD output (an empty keepalive is exactly the tag).
//! - Indexes and the transport counter are little-endian.
//! - The views only place bytes: they neither encrypt nor authenticate. `new_checked` is
//!   for bytes from the network; after it no accessor panics. `new_unchecked` is for
//!   buffers the caller sized itself (with the `*_LEN` constants); its accessors panic on
//!   a buffer that is too short.
//! - Only `core`: no allocation, no `unsafe`.

use super::{Field, WireError};

/// Message type of a handshake initiation (whitepaper 5.4.2).
pub const TYPE_INITIATION: u8 = 1;
/// Message type of a handshake response (whitepaper 5.4.3).
pub const TYPE_RESPONSE: u8 = 2;
/// Message type of a cookie reply (whitepaper 5.4.7).
pub const TYPE_COOKIE_REPLY: u8 = 3;
/// Message type of a transport data message (whitepaper 5.4.6).
pub const TYPE_TRANSPORT: u8 = 4;

/// Length of a handshake initiation.
pub const INITIATION_LEN: usize = 148;
/// Length of a handshake response.
pub const RESPONSE_LEN: usize = 92;
/// Length of a cookie reply.
pub const COOKIE_REPLY_LEN: usize = 64;
/// Bytes of a transport message before its encrypted payload: type, receiver, counter.
pub const TRANSPORT_HEADER_LEN: usize = 16;
/// Length of the Poly1305 tag that ends every AEAD output.
pub const TAG_LEN: usize = 16;
/// Length of the shortest transport message: a keepalive, whose payload is only a tag.
pub const TRANSPORT_MIN_LEN: usize = TRANSPORT_HEADER_LEN + TAG_LEN;
/// Length of the mac1 and mac2 fields that end the initiation and the response.
pub const MAC_LEN: usize = 16;
/// Length of an X25519 public key (the ephemeral keys).
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of a TAI64N timestamp.
pub const TIMESTAMP_LEN: usize = 12;
/// Length of the XChaCha20-Poly1305 nonce of a cookie reply.
pub const COOKIE_NONCE_LEN: usize = 24;
/// Length of a cookie (a keyed BLAKE2s-128 output).
pub const COOKIE_LEN: usize = 16;

mod field {
    use crate::wire::Field;

    /// The little-endian type word: the type byte and three reserved zero bytes.
    pub const TYPE: Field = 0..4;

    pub mod initiation {
        use crate::wire::Field;
        pub const SENDER: Field = 4..8;
        pub const EPHEMERAL: Field = 8..40;
        /// The initiator's static public key, sealed: 32 bytes and a tag.
        pub const STATIC: Field = 40..88;
        /// The TAI64N timestamp, sealed: 12 bytes and a tag.
        pub const TIMESTAMP: Field = 88..116;
        pub const MAC1: Field = 116..132;
        pub const MAC2: Field = 132..148;
    }

    pub mod response {
        use crate::wire::Field;
        pub const SENDER: Field = 4..8;
        pub const RECEIVER: Field = 8..12;
        pub const EPHEMERAL: Field = 12..44;
        /// An empty plaintext, sealed: only the tag.
        pub const EMPTY: Field = 44..60;
        pub const MAC1: Field = 60..76;
        pub const MAC2: Field = 76..92;
    }

    pub mod cookie_reply {
        use crate::wire::Field;
        pub const RECEIVER: Field = 4..8;
        pub const NONCE: Field = 8..32;
        /// The cookie, sealed: 16 bytes and a tag.
        pub const COOKIE: Field = 32..64;
    }

    pub mod transport {
        use crate::wire::{Field, Rest};
        pub const RECEIVER: Field = 4..8;
        pub const COUNTER: Field = 8..16;
        pub const PAYLOAD: Rest = 16..;
    }
}

/// What an outer UDP payload is, as far as its type word and length tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    Initiation,
    Response,
    CookieReply,
    Transport,
}

impl MessageKind {
    /// The three handshake-related kinds go to the control thread; transport stays on
    /// the data plane.
    pub const fn is_handshake(self) -> bool {
        !matches!(self, MessageKind::Transport)
    }
}

/// Sorts an outer UDP payload by its type word and length.
///
/// A handshake message must have exactly its length; a transport message at least
/// [`TRANSPORT_MIN_LEN`] bytes.
pub fn classify(payload: &[u8]) -> Result<MessageKind, WireError> {
    let (kind, len_ok) = match type_word(payload)? {
        TYPE_INITIATION => (MessageKind::Initiation, payload.len() == INITIATION_LEN),
        TYPE_RESPONSE => (MessageKind::Response, payload.len() == RESPONSE_LEN),
        TYPE_COOKIE_REPLY => (MessageKind::CookieReply, payload.len() == COOKIE_REPLY_LEN),
        TYPE_TRANSPORT => (MessageKind::Transport, payload.len() >= TRANSPORT_MIN_LEN),
        _ => return Err(WireError::UnknownType),
    };
    if len_ok {
        Ok(kind)
    } else {
        Err(WireError::BadLength)
    }
}

/// The message type from the first four bytes, or an error if they are missing or the
/// reserved bytes are not zero.
fn type_word(buffer: &[u8]) -> Result<u8, WireError> {
    if buffer.len() < field::TYPE.end {
        return Err(WireError::Truncated);
    }
    u8::try_from(read_le_u32(buffer, field::TYPE)).map_err(|_| WireError::UnknownType)
}

/// Checks that a handshake message has its type and exactly its length.
fn check_handshake(buffer: &[u8], message_type: u8, len: usize) -> Result<(), WireError> {
    if type_word(buffer)? != message_type {
        return Err(WireError::UnknownType);
    }
    if buffer.len() != len {
        return Err(WireError::BadLength);
    }
    Ok(())
}

/// Reads a little-endian `u32` (WireGuard's byte order, unlike the IP headers').
fn read_le_u32(buffer: &[u8], field: Field) -> u32 {
    u32::from_le_bytes(array(buffer, field))
}

fn write_le_u32(buffer: &mut [u8], field: Field, value: u32) {
    buffer[field].copy_from_slice(&value.to_le_bytes());
}

fn write_type(buffer: &mut [u8], message_type: u8) {
    write_le_u32(buffer, field::TYPE, u32::from(message_type));
}

/// Copies a fixed-length field out of the buffer.
fn array<const N: usize>(buffer: &[u8], field: Field) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&buffer[field]);
    out
}

/// A view of a handshake initiation (type 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initiation<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Initiation<T> {
    /// Wraps a buffer without checking it: accessors panic if it is shorter than
    /// [`INITIATION_LEN`].
    pub const fn new_unchecked(buffer: T) -> Self {
        Initiation { buffer }
    }

    /// Wraps a buffer that must hold exactly one initiation.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        check_handshake(buffer.as_ref(), TYPE_INITIATION, INITIATION_LEN)?;
        Ok(Initiation { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The initiator's index for this handshake; the responder echoes it as receiver.
    pub fn sender(&self) -> u32 {
        read_le_u32(self.buffer.as_ref(), field::initiation::SENDER)
    }

    /// The initiator's ephemeral public key, in the clear.
    pub fn ephemeral(&self) -> [u8; PUBLIC_KEY_LEN] {
        array(self.buffer.as_ref(), field::initiation::EPHEMERAL)
    }

    /// The initiator's static public key, sealed (key and tag).
    pub fn encrypted_static(&self) -> [u8; PUBLIC_KEY_LEN + TAG_LEN] {
        array(self.buffer.as_ref(), field::initiation::STATIC)
    }

    /// The TAI64N timestamp, sealed (timestamp and tag).
    pub fn encrypted_timestamp(&self) -> [u8; TIMESTAMP_LEN + TAG_LEN] {
        array(self.buffer.as_ref(), field::initiation::TIMESTAMP)
    }

    pub fn mac1(&self) -> [u8; MAC_LEN] {
        array(self.buffer.as_ref(), field::initiation::MAC1)
    }

    pub fn mac2(&self) -> [u8; MAC_LEN] {
        array(self.buffer.as_ref(), field::initiation::MAC2)
    }

    /// The bytes mac1 covers: everything before it.
    pub fn mac1_input(&self) -> &[u8] {
        &self.buffer.as_ref()[..field::initiation::MAC1.start]
    }

    /// The bytes mac2 covers: everything before it, mac1 included.
    pub fn mac2_input(&self) -> &[u8] {
        &self.buffer.as_ref()[..field::initiation::MAC2.start]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Initiation<T> {
    /// Writes the type word (type 1, reserved bytes zero).
    pub fn set_message_type(&mut self) {
        write_type(self.buffer.as_mut(), TYPE_INITIATION);
    }

    pub fn set_sender(&mut self, index: u32) {
        write_le_u32(self.buffer.as_mut(), field::initiation::SENDER, index);
    }

    pub fn set_ephemeral(&mut self, key: &[u8; PUBLIC_KEY_LEN]) {
        self.buffer.as_mut()[field::initiation::EPHEMERAL].copy_from_slice(key);
    }

    pub fn set_encrypted_static(&mut self, sealed: &[u8; PUBLIC_KEY_LEN + TAG_LEN]) {
        self.buffer.as_mut()[field::initiation::STATIC].copy_from_slice(sealed);
    }

    pub fn set_encrypted_timestamp(&mut self, sealed: &[u8; TIMESTAMP_LEN + TAG_LEN]) {
        self.buffer.as_mut()[field::initiation::TIMESTAMP].copy_from_slice(sealed);
    }

    pub fn set_mac1(&mut self, mac: &[u8; MAC_LEN]) {
        self.buffer.as_mut()[field::initiation::MAC1].copy_from_slice(mac);
    }

    pub fn set_mac2(&mut self, mac: &[u8; MAC_LEN]) {
        self.buffer.as_mut()[field::initiation::MAC2].copy_from_slice(mac);
    }
}

/// A view of a handshake response (type 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Response<T> {
    /// Wraps a buffer without checking it: accessors panic if it is shorter than
    /// [`RESPONSE_LEN`].
    pub const fn new_unchecked(buffer: T) -> Self {
        Response { buffer }
    }

    /// Wraps a buffer that must hold exactly one response.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        check_handshake(buffer.as_ref(), TYPE_RESPONSE, RESPONSE_LEN)?;
        Ok(Response { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The responder's index for the new session.
    pub fn sender(&self) -> u32 {
        read_le_u32(self.buffer.as_ref(), field::response::SENDER)
    }

    /// The initiator's index, echoed from the initiation.
    pub fn receiver(&self) -> u32 {
        read_le_u32(self.buffer.as_ref(), field::response::RECEIVER)
    }

    /// The responder's ephemeral public key, in the clear.
    pub fn ephemeral(&self) -> [u8; PUBLIC_KEY_LEN] {
        array(self.buffer.as_ref(), field::response::EPHEMERAL)
    }

    /// The sealed empty payload: only a tag, which authenticates the whole transcript.
    pub fn encrypted_nothing(&self) -> [u8; TAG_LEN] {
        array(self.buffer.as_ref(), field::response::EMPTY)
    }

    pub fn mac1(&self) -> [u8; MAC_LEN] {
        array(self.buffer.as_ref(), field::response::MAC1)
    }

    pub fn mac2(&self) -> [u8; MAC_LEN] {
        array(self.buffer.as_ref(), field::response::MAC2)
    }

    /// The bytes mac1 covers: everything before it.
    pub fn mac1_input(&self) -> &[u8] {
        &self.buffer.as_ref()[..field::response::MAC1.start]
    }

    /// The bytes mac2 covers: everything before it, mac1 included.
    pub fn mac2_input(&self) -> &[u8] {
        &self.buffer.as_ref()[..field::response::MAC2.start]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Response<T> {
    /// Writes the type word (type 2, reserved bytes zero).
    pub fn set_message_type(&mut self) {
        write_type(self.buffer.as_mut(), TYPE_RESPONSE);
    }

    pub fn set_sender(&mut self, index: u32) {
        write_le_u32(self.buffer.as_mut(), field::response::SENDER, index);
    }

    pub fn set_receiver(&mut self, index: u32) {
        write_le_u32(self.buffer.as_mut(), field::response::RECEIVER, index);
    }

    pub fn set_ephemeral(&mut self, key: &[u8; PUBLIC_KEY_LEN]) {
        self.buffer.as_mut()[field::response::EPHEMERAL].copy_from_slice(key);
    }

    pub fn set_encrypted_nothing(&mut self, tag: &[u8; TAG_LEN]) {
        self.buffer.as_mut()[field::response::EMPTY].copy_from_slice(tag);
    }

    pub fn set_mac1(&mut self, mac: &[u8; MAC_LEN]) {
        self.buffer.as_mut()[field::response::MAC1].copy_from_slice(mac);
    }

    pub fn set_mac2(&mut self, mac: &[u8; MAC_LEN]) {
        self.buffer.as_mut()[field::response::MAC2].copy_from_slice(mac);
    }
}

/// A view of a cookie reply (type 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieReply<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> CookieReply<T> {
    /// Wraps a buffer without checking it: accessors panic if it is shorter than
    /// [`COOKIE_REPLY_LEN`].
    pub const fn new_unchecked(buffer: T) -> Self {
        CookieReply { buffer }
    }

    /// Wraps a buffer that must hold exactly one cookie reply.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        check_handshake(buffer.as_ref(), TYPE_COOKIE_REPLY, COOKIE_REPLY_LEN)?;
        Ok(CookieReply { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The sender index of the handshake message this reply answers.
    pub fn receiver(&self) -> u32 {
        read_le_u32(self.buffer.as_ref(), field::cookie_reply::RECEIVER)
    }

    pub fn nonce(&self) -> [u8; COOKIE_NONCE_LEN] {
        array(self.buffer.as_ref(), field::cookie_reply::NONCE)
    }

    /// The cookie, sealed (cookie and tag).
    pub fn encrypted_cookie(&self) -> [u8; COOKIE_LEN + TAG_LEN] {
        array(self.buffer.as_ref(), field::cookie_reply::COOKIE)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> CookieReply<T> {
    /// Writes the type word (type 3, reserved bytes zero).
    pub fn set_message_type(&mut self) {
        write_type(self.buffer.as_mut(), TYPE_COOKIE_REPLY);
    }

    pub fn set_receiver(&mut self, index: u32) {
        write_le_u32(self.buffer.as_mut(), field::cookie_reply::RECEIVER, index);
    }

    pub fn set_nonce(&mut self, nonce: &[u8; COOKIE_NONCE_LEN]) {
        self.buffer.as_mut()[field::cookie_reply::NONCE].copy_from_slice(nonce);
    }

    pub fn set_encrypted_cookie(&mut self, sealed: &[u8; COOKIE_LEN + TAG_LEN]) {
        self.buffer.as_mut()[field::cookie_reply::COOKIE].copy_from_slice(sealed);
    }
}

/// A view of a transport data message (type 4): header, then the AEAD output of the
/// padded inner packet (ciphertext and tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Transport<T> {
    /// Wraps a buffer without checking it. The header accessors need only
    /// [`TRANSPORT_HEADER_LEN`] bytes, so a header can be written in place before the
    /// payload is attached; they panic on a shorter buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Transport { buffer }
    }

    /// Wraps a buffer that must hold a transport message: type 4 and at least a header
    /// and a tag.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let bytes = buffer.as_ref();
        if type_word(bytes)? != TYPE_TRANSPORT {
            return Err(WireError::UnknownType);
        }
        if bytes.len() < TRANSPORT_MIN_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Transport { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Our index for the session, chosen by us during the handshake.
    pub fn receiver(&self) -> u32 {
        read_le_u32(self.buffer.as_ref(), field::transport::RECEIVER)
    }

    /// The sender's nonce counter for this message.
    pub fn counter(&self) -> u64 {
        u64::from_le_bytes(array(self.buffer.as_ref(), field::transport::COUNTER))
    }

    /// Ciphertext and tag.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::transport::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Transport<T> {
    /// Writes the type word (type 4, reserved bytes zero).
    pub fn set_message_type(&mut self) {
        write_type(self.buffer.as_mut(), TYPE_TRANSPORT);
    }

    pub fn set_receiver(&mut self, index: u32) {
        write_le_u32(self.buffer.as_mut(), field::transport::RECEIVER, index);
    }

    pub fn set_counter(&mut self, counter: u64) {
        self.buffer.as_mut()[field::transport::COUNTER].copy_from_slice(&counter.to_le_bytes());
    }

    /// Ciphertext and tag, to be sealed in place.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::transport::PAYLOAD]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::for_each_mutation;
    use std::hint::black_box;

    /// An initiation with every field set to a recognisable pattern.
    fn initiation_bytes() -> [u8; INITIATION_LEN] {
        let mut bytes = [0u8; INITIATION_LEN];
        bytes[0] = TYPE_INITIATION;
        bytes[4..8].copy_from_slice(&[0x78, 0x56, 0x34, 0x12]);
        bytes[8..40].fill(0xe0);
        bytes[40..88].fill(0x5a);
        bytes[88..116].fill(0x7e);
        bytes[116..132].fill(0x11);
        bytes[132..148].fill(0x22);
        bytes
    }

    #[test]
    fn parse_initiation() {
        let bytes = initiation_bytes();
        let msg = Initiation::new_checked(&bytes[..]).unwrap();
        assert_eq!(msg.sender(), 0x1234_5678);
        assert_eq!(msg.ephemeral(), [0xe0; 32]);
        assert_eq!(msg.encrypted_static(), [0x5a; 48]);
        assert_eq!(msg.encrypted_timestamp(), [0x7e; 28]);
        assert_eq!(msg.mac1(), [0x11; 16]);
        assert_eq!(msg.mac2(), [0x22; 16]);
        assert_eq!(msg.mac1_input(), &bytes[..116]);
        assert_eq!(msg.mac2_input(), &bytes[..132]);
        assert_eq!(classify(&bytes), Ok(MessageKind::Initiation));
    }

    #[test]
    fn build_initiation() {
        let mut bytes = [0xffu8; INITIATION_LEN];
        let mut msg = Initiation::new_unchecked(&mut bytes[..]);
        msg.set_message_type();
        msg.set_sender(0x1234_5678);
        msg.set_ephemeral(&[0xe0; 32]);
        msg.set_encrypted_static(&[0x5a; 48]);
        msg.set_encrypted_timestamp(&[0x7e; 28]);
        msg.set_mac1(&[0x11; 16]);
        msg.set_mac2(&[0x22; 16]);
        assert_eq!(bytes, initiation_bytes());
    }

    #[test]
    fn parse_and_build_response() {
        let mut expected = [0u8; RESPONSE_LEN];
        expected[0] = TYPE_RESPONSE;
        expected[4..8].copy_from_slice(&[1, 0, 0, 0]);
        expected[8..12].copy_from_slice(&[0, 0, 0, 0x80]);
        expected[12..44].fill(0xe1);
        expected[44..60].fill(0x7a);
        expected[60..76].fill(0x11);
        expected[76..92].fill(0x22);

        let msg = Response::new_checked(&expected[..]).unwrap();
        assert_eq!(msg.sender(), 1);
        assert_eq!(msg.receiver(), 0x8000_0000);
        assert_eq!(msg.ephemeral(), [0xe1; 32]);
        assert_eq!(msg.encrypted_nothing(), [0x7a; 16]);
        assert_eq!(msg.mac1(), [0x11; 16]);
        assert_eq!(msg.mac2(), [0x22; 16]);
        assert_eq!(msg.mac1_input(), &expected[..60]);
        assert_eq!(msg.mac2_input(), &expected[..76]);

        let mut bytes = [0xffu8; RESPONSE_LEN];
        let mut msg = Response::new_unchecked(&mut bytes[..]);
        msg.set_message_type();
        msg.set_sender(1);
        msg.set_receiver(0x8000_0000);
        msg.set_ephemeral(&[0xe1; 32]);
        msg.set_encrypted_nothing(&[0x7a; 16]);
        msg.set_mac1(&[0x11; 16]);
        msg.set_mac2(&[0x22; 16]);
        assert_eq!(bytes, expected);
        assert_eq!(classify(&bytes), Ok(MessageKind::Response));
    }

    #[test]
    fn parse_and_build_cookie_reply() {
        let mut expected = [0u8; COOKIE_REPLY_LEN];
        expected[0] = TYPE_COOKIE_REPLY;
        expected[4..8].copy_from_slice(&[0xef, 0xbe, 0xad, 0xde]);
        expected[8..32].fill(0x40);
        expected[32..64].fill(0xc0);

        let msg = CookieReply::new_checked(&expected[..]).unwrap();
        assert_eq!(msg.receiver(), 0xdead_beef);
        assert_eq!(msg.nonce(), [0x40; 24]);
        assert_eq!(msg.encrypted_cookie(), [0xc0; 32]);

        let mut bytes = [0xffu8; COOKIE_REPLY_LEN];
        let mut msg = CookieReply::new_unchecked(&mut bytes[..]);
        msg.set_message_type();
        msg.set_receiver(0xdead_beef);
        msg.set_nonce(&[0x40; 24]);
        msg.set_encrypted_cookie(&[0xc0; 32]);
        assert_eq!(bytes, expected);
        assert_eq!(classify(&bytes), Ok(MessageKind::CookieReply));
    }

    #[test]
    fn parse_and_build_transport() {
        // A keepalive: header and a bare tag.
        let expected: [u8; 32] = [
            0x04, 0x00, 0x00, 0x00, // type 4
            0x02, 0x00, 0x00, 0x00, // receiver 2
            0x09, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, // counter
            0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, // tag
            0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
        ];
        let msg = Transport::new_checked(&expected[..]).unwrap();
        assert_eq!(msg.receiver(), 2);
        assert_eq!(msg.counter(), 0x0203_0405_0607_0809);
        assert_eq!(msg.payload(), &[0xaa; 16]);
        assert_eq!(classify(&expected), Ok(MessageKind::Transport));

        let mut bytes = [0u8; 32];
        let mut msg = Transport::new_unchecked(&mut bytes[..]);
        msg.set_message_type();
        msg.set_receiver(2);
        msg.set_counter(0x0203_0405_0607_0809);
        msg.payload_mut().fill(0xaa);
        assert_eq!(bytes, expected);

        let mut long = [0u8; 1500];
        long[0] = TYPE_TRANSPORT;
        assert_eq!(
            Transport::new_checked(&long[..]).unwrap().payload().len(),
            1484
        );
        assert_eq!(classify(&long), Ok(MessageKind::Transport));
    }

    #[test]
    fn handshake_lengths_must_be_exact() {
        let bytes = initiation_bytes();
        assert_eq!(classify(&bytes[..147]), Err(WireError::BadLength));
        let mut longer = [0u8; 149];
        longer[..148].copy_from_slice(&bytes);
        assert_eq!(classify(&longer), Err(WireError::BadLength));
        assert_eq!(
            Initiation::new_checked(&longer[..]),
            Err(WireError::BadLength)
        );
        assert_eq!(
            Initiation::new_checked(&bytes[..100]),
            Err(WireError::BadLength)
        );

        let mut response = [0u8; RESPONSE_LEN + 1];
        response[0] = TYPE_RESPONSE;
        assert_eq!(classify(&response), Err(WireError::BadLength));
        assert_eq!(
            Response::new_checked(&response[..]),
            Err(WireError::BadLength)
        );

        let mut reply = [0u8; COOKIE_REPLY_LEN - 1];
        reply[0] = TYPE_COOKIE_REPLY;
        assert_eq!(classify(&reply), Err(WireError::BadLength));
        assert_eq!(
            CookieReply::new_checked(&reply[..]),
            Err(WireError::BadLength)
        );
    }

    #[test]
    fn short_transport_is_rejected() {
        let mut bytes = [0u8; TRANSPORT_MIN_LEN - 1];
        bytes[0] = TYPE_TRANSPORT;
        assert_eq!(classify(&bytes), Err(WireError::BadLength));
        assert_eq!(
            Transport::new_checked(&bytes[..]),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn type_word_must_be_known_with_zero_reserved_bytes() {
        assert_eq!(classify(&[]), Err(WireError::Truncated));
        assert_eq!(classify(&[1, 0, 0]), Err(WireError::Truncated));
        assert_eq!(
            Initiation::new_checked(&[1u8, 0][..]),
            Err(WireError::Truncated)
        );

        let mut bytes = initiation_bytes();
        bytes[1] = 1;
        assert_eq!(classify(&bytes), Err(WireError::UnknownType));
        assert_eq!(
            Initiation::new_checked(&bytes[..]),
            Err(WireError::UnknownType)
        );

        for unknown in [0u8, 5, 0xff] {
            let mut bytes = [0u8; 64];
            bytes[0] = unknown;
            assert_eq!(classify(&bytes), Err(WireError::UnknownType));
        }

        // A response is not an initiation, whatever its length.
        let mut bytes = initiation_bytes();
        bytes[0] = TYPE_RESPONSE;
        assert_eq!(
            Initiation::new_checked(&bytes[..]),
            Err(WireError::UnknownType)
        );
    }

    #[test]
    fn handshake_kinds() {
        assert!(MessageKind::Initiation.is_handshake());
        assert!(MessageKind::Response.is_handshake());
        assert!(MessageKind::CookieReply.is_handshake());
        assert!(!MessageKind::Transport.is_handshake());
    }

    /// Reads every field of the view `classify` picks; an accessor that can panic after
    /// `new_checked` succeeded panics here.
    fn read_all(bytes: &[u8]) {
        let kind = classify(bytes);
        let viewed = match kind {
            Ok(MessageKind::Initiation) => Initiation::new_checked(bytes).map(|m| {
                black_box((m.sender(), m.ephemeral(), m.encrypted_static()));
                black_box((m.encrypted_timestamp(), m.mac1(), m.mac2()));
                black_box((m.mac1_input(), m.mac2_input()));
            }),
            Ok(MessageKind::Response) => Response::new_checked(bytes).map(|m| {
                black_box((m.sender(), m.receiver(), m.ephemeral()));
                black_box((m.encrypted_nothing(), m.mac1(), m.mac2()));
                black_box((m.mac1_input(), m.mac2_input()));
            }),
            Ok(MessageKind::CookieReply) => CookieReply::new_checked(bytes).map(|m| {
                black_box((m.receiver(), m.nonce(), m.encrypted_cookie()));
            }),
            Ok(MessageKind::Transport) => Transport::new_checked(bytes).map(|m| {
                black_box((m.receiver(), m.counter(), m.payload()));
            }),
            Err(error) => Err(error),
        };
        assert_eq!(
            viewed.is_ok(),
            kind.is_ok(),
            "classify and new_checked agree"
        );
    }

    #[test]
    fn mutated_messages_never_panic() {
        let mut transport = [0xaau8; 80];
        transport[..4].copy_from_slice(&[4, 0, 0, 0]);
        let mut response = [0x33u8; RESPONSE_LEN];
        response[..4].copy_from_slice(&[2, 0, 0, 0]);
        let mut reply = [0x44u8; COOKIE_REPLY_LEN];
        reply[..4].copy_from_slice(&[3, 0, 0, 0]);
        for sample in [&initiation_bytes()[..], &response, &reply, &transport] {
            for_each_mutation(sample, 2000, read_all);
        }
    }
}
