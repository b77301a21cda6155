//! Key text: WireGuard keys are 32 bytes written in standard base64 (44 characters).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

pub fn encode(key: &[u8; 32]) -> String {
    STANDARD.encode(key)
}
