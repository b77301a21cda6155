//! Device and interface names: DPDK device specs for the ports and the crypto device,
//! and kernel-style names for the TAP and the UAPI socket.
//!
//! A DPDK device is either a virtual device, given as the `--vdev` argument DPDK takes
//! (`net_af_xdp0,iface=eth1`: a driver name with an optional instance suffix, then
//! comma-separated arguments), or a PCI address (`0000:3b:00.0`, the domain optional).
//! The two are told apart by shape, so no key says which one is meant.

use std::fmt;

use super::DeviceSpec;

impl DeviceSpec {
    /// Parses a port device: a `net_*` (or legacy `eth_*`) vdev spec or a PCI address.
    /// The error is a reason fit to follow a key path.
    pub fn parse_port(text: &str) -> Result<DeviceSpec, String> {
        let (name, _) = split_spec(text)?;
        if let Some(address) = pci_address(name) {
            if name.len() != text.len() {
                return Err(format!(
                    "{text:?}: a PCI address takes no arguments here; write only {address}"
                ));
            }
            return Ok(DeviceSpec::Pci { address });
        }
        // DPDK matches a vdev name against driver names and their aliases by prefix;
        // the network drivers are all `net_*`, a few with a legacy `eth_*` alias.
        if (name.starts_with("net_") || name.starts_with("eth_")) && is_vdev_name(name, 4) {
            return Ok(DeviceSpec::Vdev {
                spec: text.to_string(),
                name: name.to_string(),
            });
        }
        Err(format!(
            "{text:?} is neither a DPDK network vdev (like net_af_xdp0,iface=eth1) \
             nor a PCI address (like 0000:3b:00.0)"
        ))
    }

    /// Whether this is a PCI device, which DPDK only finds if PCI probing is on.
    pub fn is_pci(&self) -> bool {
        matches!(self, DeviceSpec::Pci { .. })
    }

    /// What identifies the device to DPDK: the vdev name or the PCI address.
    pub fn name(&self) -> &str {
        match self {
            DeviceSpec::Vdev { name, .. } => name,
            DeviceSpec::Pci { address } => address,
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Vdev { spec, .. } => f.write_str(spec),
            DeviceSpec::Pci { address } => f.write_str(address),
        }
    }
}

/// Checks a crypto device: a `crypto_*` vdev spec or a PCI address (such as a QAT
/// function). Returns the spec, PCI addresses in canonical form.
pub(super) fn crypto_device(text: &str) -> Result<String, String> {
    let (name, _) = split_spec(text)?;
    if let Some(address) = pci_address(name) {
        if name.len() != text.len() {
            return Err(format!(
                "{text:?}: a PCI address takes no arguments here; write only {address}"
            ));
        }
        return Ok(address);
    }
    if name.starts_with("crypto_") && is_vdev_name(name, 7) {
        return Ok(text.to_string());
    }
    Err(format!(
        "{text:?} is neither a DPDK crypto vdev (like crypto_aesni_mb or \
         crypto_chacha20_poly1305) nor a PCI address (like 0000:3d:01.0)"
    ))
}

/// Splits a device spec into its name and arguments and checks the characters DPDK's
/// argument parser would choke on.
fn split_spec(text: &str) -> Result<(&str, Option<&str>), String> {
    if text.is_empty() {
        return Err("is empty".to_string());
    }
    if text.chars().any(char::is_whitespace) {
        return Err(format!("{text:?} contains white space"));
    }
    let (name, args) = match text.split_once(',') {
        Some((name, args)) => (name, Some(args)),
        None => (text, None),
    };
    if name.is_empty() {
        return Err(format!(
            "{text:?} has no device name before the first comma"
        ));
    }
    if let Some(args) = args {
        if args.split(',').any(str::is_empty) {
            return Err(format!(
                "{text:?} has an empty argument (two commas in a row?)"
            ));
        }
    }
    let name_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':' || b == b'.');
    if !name_ok {
        return Err(format!(
            "{text:?}: device name {name:?} has unexpected characters"
        ));
    }
    Ok((name, args))
}

/// A driver name and instance suffix after a `prefix_len`-byte class prefix.
fn is_vdev_name(name: &str, prefix_len: usize) -> bool {
    name.len() > prefix_len && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `[domain:]bus:device.function` in hex, as `lspci -D` prints it; returns the
/// canonical lower-case form with the domain, or `None` if `text` is not one.
fn pci_address(text: &str) -> Option<String> {
    fn hex(text: &str, digits: usize) -> Option<u32> {
        if text.len() != digits || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(text, 16).ok()
    }
    let (rest, function) = text.rsplit_once('.')?;
    let parts: Vec<&str> = rest.split(':').collect();
    let (domain, bus, device) = match parts[..] {
        [domain, bus, device] => (hex(domain, 4)?, hex(bus, 2)?, hex(device, 2)?),
        [bus, device] => (0, hex(bus, 2)?, hex(device, 2)?),
        _ => return None,
    };
    let function = hex(function, 1)?;
    // PCI has 32 devices per bus and 8 functions per device.
    if device > 0x1f || function > 7 {
        return None;
    }
    Some(format!("{domain:04x}:{bus:02x}:{device:02x}.{function}"))
}

/// Checks a name used as a network interface name (the TAP) or as a WireGuard
/// interface name (the UAPI socket). The rule is wg-quick's: 1 to 15 characters from
/// `a-zA-Z0-9_=+.-` (15 because Linux's IFNAMSIZ is 16 with the terminating NUL).
pub(super) fn interface_name(text: &str) -> Result<(), String> {
    const MAX_LEN: usize = 15;
    if text.is_empty() {
        return Err("is empty".to_string());
    }
    if let Some(bad) = text
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "_=+.-".contains(c)))
    {
        return Err(format!(
            "{text:?} contains {bad:?}; an interface name uses only letters, digits and _=+.-"
        ));
    }
    if text.len() > MAX_LEN {
        return Err(format!(
            "{text:?} has {} characters; an interface name has at most {MAX_LEN}",
            text.len()
        ));
    }
    if text == "." || text == ".." {
        return Err(format!("{text:?} is not usable as an interface name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_devices() {
        assert_eq!(
            DeviceSpec::parse_port("net_af_xdp0,iface=eth1").unwrap(),
            DeviceSpec::Vdev {
                spec: "net_af_xdp0,iface=eth1".to_string(),
                name: "net_af_xdp0".to_string()
            }
        );
        assert_eq!(
            DeviceSpec::parse_port("net_ring0").unwrap().name(),
            "net_ring0"
        );
        assert_eq!(
            DeviceSpec::parse_port("eth_af_packet0,iface=veth0")
                .unwrap()
                .name(),
            "eth_af_packet0"
        );
        assert_eq!(
            DeviceSpec::parse_port("0000:3B:00.0").unwrap(),
            DeviceSpec::Pci {
                address: "0000:3b:00.0".to_string()
            }
        );
        assert_eq!(
            DeviceSpec::parse_port("3b:1f.7").unwrap().to_string(),
            "0000:3b:1f.7"
        );
        for bad in [
            "",
            "net_",
            "eth1",
            "af_xdp0,iface=eth1",
            "crypto_aesni_mb",
            "net_af_xdp0,,iface=eth1",
            "net_af_xdp0,",
            ",iface=eth1",
            "net_af_xdp0, iface=eth1",
            "0000:3b:20.0",
            "0000:3b:00.8",
            "0000:3b:00.0,rxq=2",
            "00000:3b:00.0",
            "net_af_xdp:0",
        ] {
            assert!(DeviceSpec::parse_port(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn crypto_devices() {
        assert_eq!(
            crypto_device("crypto_aesni_mb0,max_nb_queue_pairs=4").unwrap(),
            "crypto_aesni_mb0,max_nb_queue_pairs=4"
        );
        assert_eq!(crypto_device("0000:3d:01.0").unwrap(), "0000:3d:01.0");
        for bad in ["", "crypto_", "net_null0", "aesni_mb"] {
            assert!(crypto_device(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn interface_names() {
        for good in ["wgdp0", "wg-hub.1", "a", "abcdefghijklmno"] {
            assert!(interface_name(good).is_ok(), "{good:?} refused");
        }
        for bad in [
            "",
            "abcdefghijklmnop",
            "wg/0",
            "wg 0",
            "wg:0",
            ".",
            "..",
            "wgé",
        ] {
            assert!(interface_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
