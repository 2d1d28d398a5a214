//! `TCP_NODELAY` on this process's connection to the Lambda Runtime API.
//!
//! `lambda_runtime` posts a streamed response as chunked frames: the prelude (status and
//! headers), an 8-byte separator, then the body. Its hyper connector leaves Nagle's algorithm
//! on and offers no way to change that, so the body frame waits until the separator is
//! acknowledged, and the Runtime API's side delays that acknowledgement by Linux's ~40 ms
//! delayed-ACK timer: every streamed response arrived ~40 ms late (measured under `cargo lambda
//! watch`, `bench/lambda_emulator.py`; the socket traces showed the body written at once and
//! read 42 ms later). A buffered response is one frame and never waited.
//!
//! The fix is applied from outside the library: before each invocation is handled, the
//! connection the event came in on (idle in hyper's pool, about to carry the response) is
//! found among this process's descriptors by its peer address and given `TCP_NODELAY`. The
//! descriptor found is remembered, so a warm invocation costs two system calls; a new
//! connection (the old one closed) is found by a fresh scan.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::Mutex;

use nix::sys::socket::{SockaddrStorage, getpeername, getsockopt, setsockopt, sockopt};

/// What [`RuntimeSocket::ensure_nodelay`] found, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoDelay {
    /// Connections to the Runtime API that have `TCP_NODELAY`, read back after setting it.
    Set(usize),
    /// No open connection to the Runtime API was found (or its address is not known).
    NotFound,
}

/// The Runtime API's address and the descriptors last seen connected to it.
#[derive(Debug)]
pub(crate) struct RuntimeSocket {
    peers: Vec<SocketAddr>,
    known: Mutex<Vec<RawFd>>,
}

impl RuntimeSocket {
    /// From `AWS_LAMBDA_RUNTIME_API`: `host:port` on Lambda, a URL with a scheme and a path
    /// under the emulator (`http://127.0.0.1:9000/.rt/fn`). Resolving a host name happens here,
    /// once, at init.
    pub(crate) fn new(runtime_api: &str) -> Self {
        let rest = ["http://", "https://"]
            .iter()
            .find_map(|scheme| runtime_api.strip_prefix(scheme))
            .unwrap_or(runtime_api);
        let authority = rest.split('/').next().unwrap_or_default();
        let peers = authority
            .to_socket_addrs()
            .map(|addrs| addrs.collect())
            .unwrap_or_default();
        Self {
            peers,
            known: Mutex::new(Vec::new()),
        }
    }

    /// The addresses the Runtime API's name resolved to, for the log.
    pub(crate) fn peers(&self) -> &[SocketAddr] {
        &self.peers
    }

    /// Gives every open connection to the Runtime API `TCP_NODELAY`.
    pub(crate) fn ensure_nodelay(&self) -> NoDelay {
        if self.peers.is_empty() {
            return NoDelay::NotFound;
        }
        let Ok(mut known) = self.known.lock() else {
            return NoDelay::NotFound;
        };
        if !known.is_empty() && known.iter().all(|&fd| self.nodelay_on(fd)) {
            return NoDelay::Set(known.len());
        }
        *known = open_fds()
            .into_iter()
            .filter(|&fd| self.nodelay_on(fd))
            .collect();
        match known.len() {
            0 => NoDelay::NotFound,
            n => NoDelay::Set(n),
        }
    }

    /// True when `fd` is a connection to the Runtime API that has (now) `TCP_NODELAY`.
    fn nodelay_on(&self, fd: RawFd) -> bool {
        let peer = getpeername::<SockaddrStorage>(fd).ok().and_then(to_std);
        if !peer.is_some_and(|p| self.peers.contains(&p)) {
            return false;
        }
        // SAFETY: `fd` was open a moment ago and is only borrowed for two system calls. Were
        // another thread to close it meanwhile, they fail with EBADF or act on whatever socket
        // took the number; neither touches memory.
        #[allow(unsafe_code)]
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        if getsockopt(&fd, sockopt::TcpNoDelay).unwrap_or(false) {
            return true;
        }
        setsockopt(&fd, sockopt::TcpNoDelay, &true).is_ok()
            && getsockopt(&fd, sockopt::TcpNoDelay).unwrap_or(false)
    }
}

/// This process's open descriptors, from /proc/self/fd.
fn open_fds() -> Vec<RawFd> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn to_std(addr: SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_connection_to_the_runtime_api_gets_nodelay_and_others_do_not() {
        let api = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let to_api = TcpStream::connect(api.local_addr().unwrap()).unwrap();
        let to_other = TcpStream::connect(other.local_addr().unwrap()).unwrap();
        assert!(!to_api.nodelay().unwrap() && !to_other.nodelay().unwrap());

        let socket = RuntimeSocket::new(&format!("http://{}/.rt/fn", api.local_addr().unwrap()));
        assert_eq!(socket.ensure_nodelay(), NoDelay::Set(1));
        assert!(to_api.nodelay().unwrap());
        assert!(!to_other.nodelay().unwrap());
        // Remembered: the second call checks the descriptor it found.
        assert_eq!(socket.ensure_nodelay(), NoDelay::Set(1));

        // The connection closes and a new one (Nagle on again) takes its place: found again.
        drop(to_api);
        let again = TcpStream::connect(api.local_addr().unwrap()).unwrap();
        assert_eq!(socket.ensure_nodelay(), NoDelay::Set(1));
        assert!(again.nodelay().unwrap());
    }

    #[test]
    fn no_connection_or_no_address_is_reported_as_not_found() {
        let api = TcpListener::bind("127.0.0.1:0").unwrap();
        // Lambda's own form: `host:port`.
        let socket = RuntimeSocket::new(&api.local_addr().unwrap().to_string());
        assert_eq!(socket.ensure_nodelay(), NoDelay::NotFound);
        assert_eq!(RuntimeSocket::new("").ensure_nodelay(), NoDelay::NotFound);
        assert_eq!(
            RuntimeSocket::new("no such host:x").ensure_nodelay(),
            NoDelay::NotFound
        );
    }
}
