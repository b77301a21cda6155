//! WireGuard message views on arbitrary bytes: `classify` must agree with each view's
//! `new_checked` (exact handshake lengths, transport header and tag), no accessor of a
//! checked view may panic, and writing a checked message's fields into a fresh buffer
//! with the setters must reproduce it byte for byte.

#![no_main]

use dataplane::wire::wireguard::{
    classify, CookieReply, Initiation, MessageKind, Response, Transport, COOKIE_REPLY_LEN,
    INITIATION_LEN, RESPONSE_LEN, TRANSPORT_HEADER_LEN, TRANSPORT_MIN_LEN,
};
use dataplane::wire::WireError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let kind = classify(data);
    if data.len() < 4 {
        assert_eq!(kind, Err(WireError::Truncated));
    }
    let initiation = Initiation::new_checked(data);
    let response = Response::new_checked(data);
    let cookie = CookieReply::new_checked(data);
    let transport = Transport::new_checked(data);
    assert_eq!(kind == Ok(MessageKind::Initiation), initiation.is_ok());
    assert_eq!(kind == Ok(MessageKind::Response), response.is_ok());
    assert_eq!(kind == Ok(MessageKind::CookieReply), cookie.is_ok());
    assert_eq!(kind == Ok(MessageKind::Transport), transport.is_ok());
    if let Ok(kind) = kind {
        assert_eq!(kind.is_handshake(), kind != MessageKind::Transport);
        assert_eq!(&data[1..4], &[0, 0, 0], "reserved bytes are zero");
    }

    if let Ok(m) = initiation {
        assert_eq!(data.len(), INITIATION_LEN);
        assert_eq!(m.mac1_input().len(), 116);
        assert_eq!(m.mac2_input().len(), 132);
        let mut b = [0u8; INITIATION_LEN];
        let mut w = Initiation::new_unchecked(&mut b[..]);
        w.set_message_type();
        w.set_sender(m.sender());
        w.set_ephemeral(&m.ephemeral());
        w.set_encrypted_static(&m.encrypted_static());
        w.set_encrypted_timestamp(&m.encrypted_timestamp());
        w.set_mac1(&m.mac1());
        w.set_mac2(&m.mac2());
        assert_eq!(&b[..], data);
    }
    if let Ok(m) = response {
        assert_eq!(data.len(), RESPONSE_LEN);
        assert_eq!(m.mac1_input().len(), 60);
        assert_eq!(m.mac2_input().len(), 76);
        let mut b = [0u8; RESPONSE_LEN];
        let mut w = Response::new_unchecked(&mut b[..]);
        w.set_message_type();
        w.set_sender(m.sender());
        w.set_receiver(m.receiver());
        w.set_ephemeral(&m.ephemeral());
        w.set_encrypted_nothing(&m.encrypted_nothing());
        w.set_mac1(&m.mac1());
        w.set_mac2(&m.mac2());
        assert_eq!(&b[..], data);
    }
    if let Ok(m) = cookie {
        assert_eq!(data.len(), COOKIE_REPLY_LEN);
        let mut b = [0u8; COOKIE_REPLY_LEN];
        let mut w = CookieReply::new_unchecked(&mut b[..]);
        w.set_message_type();
        w.set_receiver(m.receiver());
        w.set_nonce(&m.nonce());
        w.set_encrypted_cookie(&m.encrypted_cookie());
        assert_eq!(&b[..], data);
    }
    if let Ok(m) = transport {
        assert!(data.len() >= TRANSPORT_MIN_LEN);
        assert_eq!(m.payload().len(), data.len() - TRANSPORT_HEADER_LEN);
        let mut b = vec![0u8; data.len()];
        let mut w = Transport::new_unchecked(&mut b[..]);
        w.set_message_type();
        w.set_receiver(m.receiver());
        w.set_counter(m.counter());
        w.payload_mut().copy_from_slice(m.payload());
        assert_eq!(&b[..], data);
    }

    // The transport header alone: the accessors need only its 16 bytes.
    if data.len() >= TRANSPORT_HEADER_LEN {
        let header = Transport::new_unchecked(&data[..TRANSPORT_HEADER_LEN]);
        let (receiver, counter) = (header.receiver(), header.counter());
        assert_eq!(receiver.to_le_bytes(), data[4..8]);
        assert_eq!(counter.to_le_bytes(), data[8..16]);
        assert!(header.payload().is_empty());
    }
});
