//! DPDK telemetry commands answered by Rust closures.
//!
//! The EAL serves telemetry on a Unix socket (`SOCK_SEQPACKET`) in its runtime directory,
//! [`socket_dir`]`/dpdk_telemetry.v2` (`dpdk_telemetry.v2:N` when another process with
//! the same file prefix already holds that name), unless it was started with
//! `--no-telemetry`. A client such as `dpdk-telemetry.py` sends `/command` or
//! `/command,params` and gets one JSON object back.
//!
//! Contract:
//! - [`register`] adds a command whose answer a closure builds as a [`Reply`]. The
//!   closure runs on a DPDK telemetry thread (one per connected client, so possibly
//!   several at once): it must be `Send + Sync` and should only read data published for
//!   it (an `ArcSwap`, atomics), never wait on the data path.
//! - DPDK 22.11's callback gets no user pointer, so every command goes through one
//!   trampoline that finds its closure by command name in a process-wide table.
//! - A command stays registered while its [`Command`] lives. DPDK cannot forget a
//!   command, so after the drop it is still listed by `/` but answers `null`; registering
//!   the same name again makes it answer again.
//! - A closure that returns `None` (e.g. a parameter naming nothing) and a reply that
//!   breaks DPDK's limits (see [`Reply::validate`]) answer `null`. So does a closure that
//!   panics, where panics unwind; with `panic = "abort"` the process ends as it would on
//!   any thread.
//! - Registering needs no EAL: commands registered before `rte_eal_init` are served once
//!   it starts the socket.
//! - DPDK writes at most 16 KiB of JSON per answer and silently leaves out entries that
//!   do not fit; answers that can grow with the configuration (one entry per peer)
//!   belong in a list plus one command per item, like DPDK's `/ethdev/list` and
//!   `/ethdev/stats,<id>`.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::Error;
use crate::lifecycle;
use crate::sys;

/// Most entries in one [`Dict`] (`RTE_TEL_MAX_DICT_ENTRIES`).
pub const MAX_DICT_ENTRIES: usize = sys::RTE_TEL_MAX_DICT_ENTRIES as usize;
/// Most entries in a list reply (`RTE_TEL_MAX_ARRAY_ENTRIES`).
pub const MAX_ARRAY_ENTRIES: usize = sys::RTE_TEL_MAX_ARRAY_ENTRIES as usize;
/// Longest dict key or string value, in bytes (`RTE_TEL_MAX_STRING_LEN` less the NUL).
pub const MAX_STRING_LEN: usize = sys::RTE_TEL_MAX_STRING_LEN as usize - 1;
/// Longest command name, in bytes (`MAX_CMD_LEN` in DPDK's telemetry.c, less the NUL).
pub const MAX_COMMAND_LEN: usize = 55;

/// The answer to a telemetry command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A JSON object.
    Dict(Dict),
    /// A JSON array of numbers.
    U64s(Vec<u64>),
    /// A JSON array of strings.
    Strings(Vec<String>),
}

/// A JSON object of named values, in insertion order.
///
/// Keys may hold only ASCII letters, digits, `_` and `/` (DPDK refuses others).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dict {
    entries: Vec<(String, Value)>,
}

/// A value in a [`Dict`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    U64(u64),
    String(String),
    Dict(Dict),
}

impl Dict {
    pub fn new() -> Dict {
        Dict::default()
    }

    pub fn add_u64(&mut self, name: impl Into<String>, value: u64) -> &mut Dict {
        self.add(name.into(), Value::U64(value))
    }

    pub fn add_string(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Dict {
        self.add(name.into(), Value::String(value.into()))
    }

    pub fn add_dict(&mut self, name: impl Into<String>, value: Dict) -> &mut Dict {
        self.add(name.into(), Value::Dict(value))
    }

    fn add(&mut self, name: String, value: Value) -> &mut Dict {
        self.entries.push((name, value));
        self
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value under `name` (the first one, if a key was added twice).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    fn validate(&self, path: &str) -> Result<(), String> {
        if self.entries.len() > MAX_DICT_ENTRIES {
            return Err(format!(
                "{path}: {} entries, DPDK takes at most {MAX_DICT_ENTRIES}",
                self.entries.len()
            ));
        }
        for (name, value) in &self.entries {
            let path = format!("{path}/{name}");
            check_key(name).map_err(|e| format!("{path}: {e}"))?;
            match value {
                Value::U64(_) => {}
                Value::String(s) => check_string(s).map_err(|e| format!("{path}: {e}"))?,
                // DPDK 22.11 prints an empty nested object as `[]`.
                Value::Dict(d) if d.is_empty() => {
                    return Err(format!("{path}: an empty nested dict"));
                }
                Value::Dict(d) => d.validate(&path)?,
            }
        }
        Ok(())
    }
}

impl Reply {
    /// Checks the reply against what DPDK 22.11 accepts: at most [`MAX_DICT_ENTRIES`] per
    /// dict and [`MAX_ARRAY_ENTRIES`] per list, keys of letters, digits, `_` and `/`, no
    /// string longer than [`MAX_STRING_LEN`] or holding a NUL, no empty nested dict. A
    /// reply that fails answers `null`; tests call this to find out why.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Reply::Dict(d) => d.validate(""),
            Reply::U64s(v) => check_array_len(v.len()),
            Reply::Strings(v) => {
                check_array_len(v.len())?;
                v.iter().try_for_each(|s| check_string(s))
            }
        }
    }
}

fn check_array_len(len: usize) -> Result<(), String> {
    if len > MAX_ARRAY_ENTRIES {
        return Err(format!(
            "{len} list entries, DPDK takes at most {MAX_ARRAY_ENTRIES}"
        ));
    }
    Ok(())
}

fn check_key(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_STRING_LEN {
        return Err(format!(
            "key {name:?} must be 1 to {MAX_STRING_LEN} bytes long"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/')
    {
        return Err(format!(
            "key {name:?} may hold only letters, digits, '_' and '/'"
        ));
    }
    Ok(())
}

fn check_string(s: &str) -> Result<(), String> {
    if s.len() > MAX_STRING_LEN {
        return Err(format!(
            "string {s:?} is longer than {MAX_STRING_LEN} bytes"
        ));
    }
    if s.contains('\0') {
        return Err(format!("string {s:?} holds a NUL byte"));
    }
    Ok(())
}

type Handler = dyn Fn(Option<&str>) -> Option<Reply> + Send + Sync;

/// Every command ever registered with DPDK through this module, by name, with the
/// closure that answers it while its [`Command`] lives.
static COMMANDS: Mutex<BTreeMap<String, Option<Arc<Handler>>>> = Mutex::new(BTreeMap::new());

fn commands() -> MutexGuard<'static, BTreeMap<String, Option<Arc<Handler>>>> {
    // Nothing panics while holding the lock, so a poisoned table is still consistent.
    COMMANDS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A registered telemetry command; dropping it makes the command answer `null`.
#[derive(Debug)]
pub struct Command {
    name: String,
}

impl Command {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Command {
    fn drop(&mut self) {
        if let Some(handler) = commands().get_mut(&self.name) {
            *handler = None;
        }
    }
}

/// Registers telemetry command `name` (`/` followed by letters, digits, `_` and `/`, at
/// most [`MAX_COMMAND_LEN`] bytes), described by `help` (shown by `/help,<name>`), and
/// answered by `handler`, which gets the text after the first comma of the request, if
/// any. Fails if the name or help is refused, or if a live [`Command`] already holds
/// `name`.
pub fn register<F>(name: &str, help: &str, handler: F) -> Result<Command, Error>
where
    F: Fn(Option<&str>) -> Option<Reply> + Send + Sync + 'static,
{
    let op = || format!("rte_telemetry_register_cmd({name:?})");
    check_command(name).map_err(|detail| Error::invalid(op(), libc::EINVAL, detail))?;
    if help.len() > MAX_STRING_LEN || help.contains('\0') {
        return Err(Error::invalid(
            op(),
            libc::EINVAL,
            format!("the help text must be at most {MAX_STRING_LEN} bytes without NUL"),
        ));
    }

    let mut table = commands();
    match table.get_mut(name) {
        Some(Some(_)) => {
            return Err(Error::invalid(
                op(),
                libc::EEXIST,
                "the command is already registered",
            ))
        }
        Some(slot) => *slot = Some(Arc::new(handler)),
        None => {
            let cname = CString::new(name).expect("checked: no NUL");
            let chelp = CString::new(help).expect("checked: no NUL");
            // SAFETY: valid C strings, which DPDK copies; `dispatch` stays valid for the
            // life of the process. DPDK only appends to its command list under its own
            // lock, so this is safe on any thread, before or after EAL init.
            let ret = unsafe {
                sys::rte_telemetry_register_cmd(cname.as_ptr(), Some(dispatch), chelp.as_ptr())
            };
            if ret != 0 {
                return Err(Error::from_ret(op(), ret));
            }
            table.insert(name.to_owned(), Some(Arc::new(handler)));
        }
    }
    Ok(Command {
        name: name.to_owned(),
    })
}

fn check_command(name: &str) -> Result<(), String> {
    if !name.starts_with('/') || name.len() > MAX_COMMAND_LEN {
        return Err(format!(
            "a command starts with '/' and is at most {MAX_COMMAND_LEN} bytes"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/')
    {
        return Err("a command may hold only letters, digits, '_' and '/'".into());
    }
    Ok(())
}

/// The EAL runtime directory, which holds the telemetry socket (see the module docs).
pub fn socket_dir() -> Result<PathBuf, Error> {
    lifecycle::ensure_running("rte_eal_get_runtime_dir")?;
    // SAFETY: the EAL is initialised; the result points to a static NUL-terminated
    // buffer that EAL init filled and nothing changes afterwards.
    let dir = unsafe { CStr::from_ptr(sys::rte_eal_get_runtime_dir()) };
    Ok(PathBuf::from(dir.to_string_lossy().into_owned()))
}

/// The `telemetry_cb` of every command registered here.
unsafe extern "C" fn dispatch(
    cmd: *const c_char,
    params: *const c_char,
    info: *mut sys::rte_tel_data,
) -> c_int {
    // Unwinding into C is undefined behaviour; a panicking handler answers null.
    panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: DPDK passes the NUL-terminated command it matched, the parameters
        // (or NULL) from the same request buffer, and a zeroed `rte_tel_data` that
        // lives until this call returns.
        unsafe { answer(cmd, params, info) }
    }))
    .unwrap_or(-libc::EFAULT)
}

/// See [`dispatch`] for the pointers' validity.
unsafe fn answer(cmd: *const c_char, params: *const c_char, info: *mut sys::rte_tel_data) -> c_int {
    let Ok(cmd) = unsafe { CStr::from_ptr(cmd) }.to_str() else {
        return -libc::EINVAL;
    };
    let params = if params.is_null() {
        None
    } else {
        match unsafe { CStr::from_ptr(params) }.to_str() {
            Ok(p) => Some(p),
            Err(_) => return -libc::EINVAL,
        }
    };
    // The handler is cloned out so that it runs without the table locked.
    let handler = commands().get(cmd).cloned().flatten();
    let Some(reply) = handler.and_then(|h| h(params)) else {
        return -libc::ENOENT;
    };
    // Checked first so that a refused entry never strands the containers added before
    // it, which DPDK frees only when it prints a successful answer.
    if reply.validate().is_err() {
        return -libc::EINVAL;
    }
    match unsafe { fill(info, &reply) } {
        Ok(()) => 0,
        Err(ret) => ret,
    }
}

/// Writes a validated `reply` into `d`.
///
/// # Safety
/// `d` points to a writable `rte_tel_data`.
unsafe fn fill(d: *mut sys::rte_tel_data, reply: &Reply) -> Result<(), c_int> {
    match reply {
        Reply::Dict(dict) => unsafe { fill_dict(d, dict) },
        Reply::U64s(values) => {
            check_ret(unsafe { sys::rte_tel_data_start_array(d, sys::RTE_TEL_U64_VAL) })?;
            for &v in values {
                check_ret(unsafe { sys::rte_tel_data_add_array_u64(d, v) })?;
            }
            Ok(())
        }
        Reply::Strings(values) => {
            check_ret(unsafe { sys::rte_tel_data_start_array(d, sys::RTE_TEL_STRING_VAL) })?;
            for s in values {
                let s = CString::new(s.as_str()).map_err(|_| -libc::EINVAL)?;
                check_ret(unsafe { sys::rte_tel_data_add_array_string(d, s.as_ptr()) })?;
            }
            Ok(())
        }
    }
}

/// # Safety
/// As [`fill`].
unsafe fn fill_dict(d: *mut sys::rte_tel_data, dict: &Dict) -> Result<(), c_int> {
    check_ret(unsafe { sys::rte_tel_data_start_dict(d) })?;
    for (name, value) in &dict.entries {
        let name = CString::new(name.as_str()).map_err(|_| -libc::EINVAL)?;
        match value {
            Value::U64(v) => {
                check_ret(unsafe { sys::rte_tel_data_add_dict_u64(d, name.as_ptr(), *v) })?;
            }
            Value::String(s) => {
                let s = CString::new(s.as_str()).map_err(|_| -libc::EINVAL)?;
                check_ret(unsafe {
                    sys::rte_tel_data_add_dict_string(d, name.as_ptr(), s.as_ptr())
                })?;
            }
            Value::Dict(inner) => {
                // SAFETY: plain malloc; the result is checked for NULL.
                let container = unsafe { sys::rte_tel_data_alloc() };
                if container.is_null() {
                    return Err(-libc::ENOMEM);
                }
                // keep = 0: DPDK frees the container after printing the answer.
                let added = unsafe { fill_dict(container, inner) }.and_then(|()| {
                    check_ret(unsafe {
                        sys::rte_tel_data_add_dict_container(d, name.as_ptr(), container, 0)
                    })
                });
                if added.is_err() {
                    // SAFETY: not handed to DPDK, so still ours.
                    unsafe { sys::rte_tel_data_free(container) };
                }
                added?;
            }
        }
    }
    Ok(())
}

/// DPDK's builders return a negative errno on failure and a positive `E2BIG` when they
/// truncated a string, which [`Reply::validate`] rules out and which is harmless anyway.
fn check_ret(ret: c_int) -> Result<(), c_int> {
    if ret < 0 {
        Err(ret)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_enforces_dpdk_limits() {
        let mut ok = Dict::new();
        ok.add_u64("rx_packets", 1)
            .add_string("public_key", "abc+/=")
            .add_dict("drops", {
                let mut d = Dict::new();
                d.add_u64("decrypt/bad_tag", 2);
                d
            });
        assert_eq!(Reply::Dict(ok.clone()).validate(), Ok(()));
        assert_eq!(ok.get("rx_packets"), Some(&Value::U64(1)));

        let mut bad_key = Dict::new();
        bad_key.add_u64("rx-packets", 1);
        let err = Reply::Dict(bad_key).validate().unwrap_err();
        assert!(err.contains("rx-packets"), "{err}");

        let mut nested_empty = Dict::new();
        nested_empty.add_dict("x", Dict::new());
        assert!(Reply::Dict(nested_empty).validate().is_err());

        let mut long = Dict::new();
        long.add_string("s", "x".repeat(MAX_STRING_LEN + 1));
        assert!(Reply::Dict(long).validate().is_err());

        let mut full = Dict::new();
        for i in 0..=MAX_DICT_ENTRIES {
            full.add_u64(format!("k{i}"), 0);
        }
        assert!(Reply::Dict(full).validate().is_err());

        assert!(Reply::U64s(vec![0; MAX_ARRAY_ENTRIES]).validate().is_ok());
        assert!(Reply::U64s(vec![0; MAX_ARRAY_ENTRIES + 1])
            .validate()
            .is_err());
        assert!(Reply::Strings(vec!["a\0b".into()]).validate().is_err());
    }

    #[test]
    fn command_names_are_checked_before_dpdk_sees_them() {
        for bad in [
            "wgdp",
            "/wgdp,x",
            "/wgdp-peers",
            &format!("/{}", "a".repeat(55)),
        ] {
            let err = register(bad, "help", |_| None).unwrap_err();
            assert_eq!(err.errno(), libc::EINVAL, "{bad}: {err}");
        }
        let err = register("/wgdp/unit", &"h".repeat(200), |_| None).unwrap_err();
        assert_eq!(err.errno(), libc::EINVAL, "{err}");
    }

    #[test]
    fn a_name_is_held_by_one_live_command() {
        let first = register("/wgdp/unit_test", "a unit test", |_| None).unwrap();
        let err = register("/wgdp/unit_test", "again", |_| None).unwrap_err();
        assert_eq!(err.errno(), libc::EEXIST, "{err}");
        drop(first);
        let again = register("/wgdp/unit_test", "again", |_| None).unwrap();
        assert_eq!(again.name(), "/wgdp/unit_test");
    }
}
