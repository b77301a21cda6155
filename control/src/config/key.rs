//! WireGuard keys as the configuration writes them: 32 bytes in standard base64 with
//! padding, 44 characters, exactly what `wg genkey`, `wg pubkey` and `wg genpsk` print.
//!
//! Secret keys live in [`Key`], which wipes itself when dropped and never prints its
//! bytes. Error texts from [`decode_key`] describe the shape of the input only, never its
//! content, because the input may be a private key.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::{DecodeError, Engine};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of every WireGuard key (Curve25519 keys and the preshared key alike).
pub const KEY_LEN: usize = 32;

/// Length of a key in standard padded base64.
const KEY_BASE64_LEN: usize = 44;

/// A secret key (a private key or a preshared key). Zeroed on drop; `Debug` is redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// Takes ownership of raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Key {
        Key(bytes)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// Decodes a base64 key. The error is a reason fit to follow a key path, for example
/// `not valid base64 (bad character at position 7)`.
pub fn decode_key(text: &str) -> Result<[u8; KEY_LEN], String> {
    let chars = text.chars().count();
    if chars != KEY_BASE64_LEN {
        return Err(format!(
            "{chars} characters where a key has {KEY_BASE64_LEN} \
             (base64 as `wg genkey` prints it)"
        ));
    }
    let bytes = Zeroizing::new(STANDARD.decode(text).map_err(|err| match err {
        DecodeError::InvalidByte(at, _) | DecodeError::InvalidLastSymbol(at, _) => {
            format!("not valid base64 (bad character at position {})", at + 1)
        }
        DecodeError::InvalidLength(_) | DecodeError::InvalidPadding => {
            "not valid base64 (bad padding)".to_string()
        }
    })?);
    let key: [u8; KEY_LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("decodes to {} bytes where a key has {KEY_LEN}", bytes.len()))?;
    // No generator prints an all-zero key; it is a placeholder such as "AAAA...A=".
    if key == [0; KEY_LEN] {
        return Err("all zeros, a placeholder; generate a real key with `wg genkey`".to_string());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_wg_genkey_output() {
        let key = decode_key("2AE5ZYOXw7Z59ZuCa8ev2J+DQdmiHiFmsJWNCdebEUo=").unwrap();
        assert_eq!(key[0], 0xd8);
        assert_eq!(key[31], 0x4a);
    }

    #[test]
    fn refuses_malformed_keys() {
        let cases = [
            ("", "0 characters where a key has 44"),
            (
                "2AE5ZYOXw7Z59ZuCa8ev2J+DQdmiHiFmsJWNCdebEUo",
                "43 characters",
            ),
            (
                "2AE5ZYOXw7Z59ZuCa8ev2J+DQdmiHiFmsJWNCdebEUo==",
                "45 characters",
            ),
            (
                "2AE5ZYOXw7Z!9ZuCa8ev2J+DQdmiHiFmsJWNCdebEUo=",
                "position 12",
            ),
            (
                "2AE5ZYOXw7Z59ZuCa8ev2J-DQdmiHiFmsJWNCdebEUo=",
                "position 23",
            ),
            (
                "2AE5ZYOXw7Z59ZuCa8ev2J+DQdmiHiFmsJWNCdebEQ==",
                "decodes to 31 bytes",
            ),
            ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "all zeros"),
            // The last character carries bits beyond the 32nd byte.
            (
                "2AE5ZYOXw7Z59ZuCa8ev2J+DQdmiHiFmsJWNCdebEUp=",
                "not valid base64",
            ),
        ];
        for (text, expected) in cases {
            let err = decode_key(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        let key = Key::from_bytes([0x41; KEY_LEN]);
        assert_eq!(format!("{key:?}"), "Key(<redacted>)");
    }
}
