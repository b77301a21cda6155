//! How a worker wakes the control thread when it hands it packets.
//!
//! Contract: the control thread sleeps only between [`Doorbell::prepare`] and
//! [`Doorbell::woke`], and only after it found every ring to control empty after
//! `prepare`. A worker calls [`Doorbell::ring`] after each enqueue to control. Either
//! the control thread sees the packets when it looks at the rings again, or the worker
//! sees it asleep and writes the eventfd that its `ppoll` waits on: both sides store,
//! fence, then load (the same pattern as a futex wait), so no packet is left waiting for
//! a sleeper that nobody wakes. A worker pays one fence per burst it hands over (punts
//! are rare: handshakes, ARP/ND, first packets) and a `write` only while control sleeps.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};

#[derive(Debug)]
pub struct Doorbell {
    asleep: AtomicBool,
    fd: OwnedFd,
}

impl Doorbell {
    pub fn new() -> io::Result<Doorbell> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new descriptor
        // that only this value owns.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Doorbell {
            asleep: AtomicBool::new(false),
            // SAFETY: `fd` was just created and is owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// A worker handed packets to control: wake it if it sleeps.
    #[inline]
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.asleep.load(Ordering::Relaxed) && self.asleep.swap(false, Ordering::Relaxed) {
            let one = 1u64.to_ne_bytes();
            // SAFETY: writes 8 bytes from a live buffer to our eventfd. A full counter
            // (EAGAIN) means control is being woken already.
            unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        }
    }

    /// Control is about to sleep: from now on a worker that hands it packets wakes it.
    /// Control must look at its rings once more before it sleeps.
    pub fn prepare(&self) {
        self.asleep.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Control is awake again (or did not sleep): workers need not wake it, and a
    /// pending wake-up is consumed.
    pub fn woke(&self) {
        self.asleep.store(false, Ordering::Relaxed);
        let mut n = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live buffer; EAGAIN when nobody rang.
        unsafe { libc::read(self.fd.as_raw_fd(), n.as_mut_ptr().cast(), n.len()) };
    }

    /// The descriptor that becomes readable when a worker rings.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no timeout.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    #[test]
    fn rings_only_a_sleeper_and_only_once() {
        let d = Doorbell::new().unwrap();
        d.ring();
        assert!(!readable(d.fd()), "control was awake: no write");
        d.prepare();
        d.ring();
        assert!(readable(d.fd()));
        d.ring();
        d.woke();
        assert!(!readable(d.fd()), "the wake-up was consumed");
    }

    #[test]
    fn a_sleeper_on_another_thread_is_woken() {
        let d = std::sync::Arc::new(Doorbell::new().unwrap());
        d.prepare();
        let w = d.clone();
        let t = std::thread::spawn(move || w.ring());
        let mut p = libc::pollfd {
            fd: d.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; waits without a timeout until the worker rings.
        assert_eq!(unsafe { libc::poll(&mut p, 1, -1) }, 1);
        t.join().unwrap();
        d.woke();
    }
}
