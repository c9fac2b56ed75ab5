//! The userspace WireGuard device: a TUN device whose packets boringtun encrypts and
//! sends (and the reverse), run on boringtun's own threads inside the agent, in the
//! network namespace of the thread that creates it.
//!
//! boringtun is configured over the UAPI text protocol on one end of a socket pair
//! (its `uapi_fd`), never through a socket file: nothing is left in the file system and
//! no other process can reconfigure the device. The TUN device exists as long as
//! boringtun holds it open: dropping [`WgDevice`] stops boringtun and the kernel removes
//! the device, its address and its route.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use boringtun::device::{DeviceConfig, DeviceHandle};

use super::super::error::Error;
use super::super::link_msg;
use super::super::socket::Netlink;
use super::uapi::{self, PeerChange};
use super::{Key, WgPeer, WireguardHost};

/// How long boringtun may take to answer a configuration request or to let its device go.
const UAPI_TIMEOUT: Duration = Duration::from_secs(5);

/// A running userspace WireGuard device.
pub struct WgDevice {
    /// Device name.
    pub name: String,
    /// Interface index.
    pub ifindex: u32,
    /// The device's MTU. boringtun reads it once, when it opens the device, and never
    /// reads a longer packet: it can go down later, never above the first value.
    mtu: u32,
    /// The MTU the device was created with: the most boringtun reads.
    created_mtu: u32,
    handle: Option<DeviceHandle>,
    uapi: BufReader<UnixStream>,
    /// Peers as configured, by public key.
    peers: BTreeMap<Key, WgPeer>,
    /// The tunnel address on the device.
    address: Option<Ipv4Addr>,
}

impl std::fmt::Debug for WgDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgDevice")
            .field("name", &self.name)
            .field("ifindex", &self.ifindex)
            .field("peers", &self.peers.len())
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Receive and send buffer of boringtun's UDP sockets.
const SOCKET_BUFFER: usize = 4 << 20;

/// boringtun's UDP sockets keep the system's default buffers (about 200 KB), which a
/// burst of a few hundred datagrams to several peers overflows while its one thread is
/// busy encrypting or decrypting; give them room, as the relay does its own sockets.
fn grow_socket_buffers(port: u16) {
    match mcgate_sys::fds::set_udp_buffers_on_port(port, SOCKET_BUFFER) {
        Ok(n) => tracing::debug!(port, sockets = n, "WireGuard socket buffers set"),
        Err(e) => tracing::warn!(port, error = %e, "cannot grow the WireGuard socket buffers"),
    }
}

/// Packets the TUN device may queue for boringtun (the kernel's default is 500).
const TUN_QUEUE_LEN: u32 = 8192;

fn wg_error(what: impl std::fmt::Display) -> Error {
    Error::Wireguard(what.to_string())
}

impl WgDevice {
    /// Creates device `name` with `host`'s key and port, MTU `mtu`, up, with no peers.
    pub fn create(
        nl: &mut Netlink,
        name: &str,
        host: &WireguardHost,
        mtu: u32,
    ) -> Result<Self, Error> {
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| wg_error(format!("socket pair: {e}")))?;
        ours.set_read_timeout(Some(UAPI_TIMEOUT))
            .map_err(|e| wg_error(format!("socket timeout: {e}")))?;
        // One thread, one queue: boringtun opens the TUN without O_CLOEXEC, and every
        // queue it opens must be marked below before a child process could inherit it.
        let config = DeviceConfig {
            n_threads: 1,
            use_connected_socket: false,
            use_multi_queue: false,
            // boringtun owns this end from now on.
            uapi_fd: theirs.into_raw_fd(),
        };
        // boringtun reads the device's MTU once, when it opens it, and never reads a
        // longer packet: create the device and set its MTU first, holding a queue of it
        // until boringtun has attached its own.
        let first_queue = mcgate_sys::tun::open_queue(name)
            .map_err(|e| wg_error(format!("cannot create the TUN device {name}: {e}")))?;
        let ifindex = nl.link_by_name(name)?.ifindex;
        nl.set_mtu(ifindex, mtu)?;
        // A burst replicated to every remote host waits here for boringtun's one thread
        // to seal it; the TUN's default queue (500) overflowed under a 400-datagram burst.
        nl.request(
            &link_msg::set_txqueuelen(ifindex, TUN_QUEUE_LEN),
            &format!("set the queue length of {name}"),
        )?;
        let handle = DeviceHandle::new(name, config).map_err(|e| {
            wg_error(format!(
                "cannot start a userspace WireGuard device {name}: {e:?}"
            ))
        })?;
        drop(first_queue);
        let mut dev = Self {
            name: name.to_string(),
            ifindex,
            mtu,
            created_mtu: mtu,
            handle: Some(handle),
            uapi: BufReader::new(ours),
            peers: BTreeMap::new(),
            address: None,
        };
        // Children must not inherit the TUN: they would keep the device alive after
        // boringtun let it go.
        mcgate_sys::fds::set_cloexec_on("/dev/net/tun")
            .map_err(|e| wg_error(format!("cannot mark the TUN descriptor close-on-exec: {e}")))?;
        dev.configure(&uapi::set_interface(&host.private_key, host.listen_port))?;
        grow_socket_buffers(host.listen_port);
        nl.request(
            &link_msg::set_up(dev.ifindex, true),
            &format!("bring {name} up"),
        )?;
        Ok(dev)
    }

    /// Sends one `set=1` request and checks the answer.
    fn configure(&mut self, request: &str) -> Result<(), Error> {
        self.uapi
            .get_mut()
            .write_all(request.as_bytes())
            .map_err(|e| wg_error(format!("cannot configure {}: {e}", self.name)))?;
        let mut answer = String::new();
        loop {
            let mut line = String::new();
            let n = self
                .uapi
                .read_line(&mut line)
                .map_err(|e| wg_error(format!("no answer from {}: {e}", self.name)))?;
            if n == 0 || line == "\n" {
                break;
            }
            answer.push_str(&line);
        }
        match uapi::parse_answer(&answer).map_err(wg_error)? {
            0 => Ok(()),
            errno => Err(wg_error(format!(
                "{} refused its configuration: {}",
                self.name,
                std::io::Error::from_raw_os_error(errno)
            ))),
        }
    }

    /// Replaces the private key and port (this host's key rotated).
    pub fn set_host(&mut self, host: &WireguardHost) -> Result<(), Error> {
        // `replace_peers` in the interface request: put the peers back in the same one.
        let peers: Vec<WgPeer> = self.peers.values().cloned().collect();
        let mut req = uapi::set_interface(&host.private_key, host.listen_port);
        req.pop();
        let body = uapi::set_peers(&peers.into_iter().map(PeerChange::Set).collect::<Vec<_>>());
        req.push_str(body.trim_start_matches("set=1\n"));
        self.configure(&req)?;
        // Setting the port again made new sockets.
        grow_socket_buffers(host.listen_port);
        // Peers that already have the new public key complete a handshake at once.
        self.prime(self.peers.values().map(|p| p.tunnel_address));
        Ok(())
    }

    /// The device's MTU.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Sets the MTU to `wanted`, or to the MTU the device was created with if that is
    /// lower (boringtun would cut longer packets); returns the MTU the device has.
    pub fn set_mtu(&mut self, nl: &mut Netlink, wanted: u32) -> Result<u32, Error> {
        let mtu = wanted.min(self.created_mtu);
        if mtu != self.mtu {
            nl.set_mtu(self.ifindex, mtu)?;
            self.mtu = mtu;
        }
        Ok(mtu)
    }

    /// Puts `addr/32` on the device (replacing a previous tunnel address).
    pub fn set_address(&mut self, nl: &mut Netlink, addr: Ipv4Addr) -> Result<(), Error> {
        if self.address == Some(addr) {
            return Ok(());
        }
        if let Some(old) = self.address.take() {
            nl.del_address(self.ifindex, old)?;
        }
        nl.add_address(self.ifindex, addr)?;
        self.address = Some(addr);
        Ok(())
    }

    /// Makes the device's peers exactly `wanted`, each tunnel address routed through
    /// the device (`/32`); returns how many changed. A peer whose key changed is replaced
    /// by its successor in the same request.
    pub fn set_peers(&mut self, nl: &mut Netlink, wanted: &[WgPeer]) -> Result<usize, Error> {
        let want: BTreeMap<Key, WgPeer> =
            wanted.iter().map(|p| (p.public_key, p.clone())).collect();
        let before: BTreeSet<Ipv4Addr> = self.peers.values().map(|p| p.tunnel_address).collect();
        // boringtun cannot modify a peer in place (it panics): a peer whose endpoint or
        // tunnel address changed is removed in a request of its own, then added again.
        let changed: Vec<Key> = want
            .values()
            .filter(|p| self.peers.get(&p.public_key).is_some_and(|old| old != *p))
            .map(|p| p.public_key)
            .collect();
        if !changed.is_empty() {
            let removals: Vec<PeerChange> =
                changed.iter().map(|k| PeerChange::Remove(*k)).collect();
            self.configure(&uapi::set_peers(&removals))?;
            for k in &changed {
                self.peers.remove(k);
            }
        }
        let mut changes: Vec<PeerChange> = self
            .peers
            .keys()
            .filter(|k| !want.contains_key(k))
            .map(|k| PeerChange::Remove(*k))
            .collect();
        changes.extend(
            want.values()
                .filter(|p| !self.peers.contains_key(&p.public_key))
                .map(|p| PeerChange::Set(p.clone())),
        );
        if changes.is_empty() {
            return Ok(changed.len());
        }
        self.configure(&uapi::set_peers(&changes))?;
        let after: BTreeSet<Ipv4Addr> = want.values().map(|p| p.tunnel_address).collect();
        self.peers = want;
        for gone in before.difference(&after) {
            nl.del_route(*gone, self.ifindex)?;
        }
        for new in after.difference(&before) {
            nl.replace_route(*new, self.ifindex)?;
        }
        self.prime(changes.iter().filter_map(|c| match c {
            PeerChange::Set(p) => Some(p.tunnel_address),
            PeerChange::Remove(_) => None,
        }));
        Ok(changes.len())
    }

    /// Starts the handshake with each of `peers` now, rather than with a flow's first
    /// packets: boringtun queues only 256 packets per peer while a handshake is under
    /// way, and a burst would lose the rest. One empty datagram to the discard port
    /// (RFC 863) of the peer's tunnel address does it; the peer's kernel answers it with
    /// an ICMP port unreachable at most.
    fn prime(&self, peers: impl Iterator<Item = Ipv4Addr>) {
        let Some(local) = self.address else {
            return;
        };
        let Ok(sock) = std::net::UdpSocket::bind((local, 0)) else {
            return;
        };
        for p in peers {
            if let Err(e) = sock.send_to(&[], (p, 9)) {
                tracing::debug!(peer = %p, error = %e, "cannot start a WireGuard handshake early");
            }
        }
    }

    /// The peers as configured.
    pub fn peers(&self) -> impl Iterator<Item = &WgPeer> {
        self.peers.values()
    }

    /// Stops boringtun and waits (bounded) until the kernel removed the TUN device.
    pub fn delete(mut self, nl: &mut Netlink) -> Result<(), Error> {
        // Dropping the handle tells boringtun's threads to exit; the device goes when
        // the last of them closes its queue.
        drop(self.handle.take());
        let end = Instant::now() + UAPI_TIMEOUT;
        loop {
            match nl.link_by_index(self.ifindex) {
                Err(e) if e.is_not_found() => return Ok(()),
                Ok(l) if l.name != self.name => return Ok(()),
                Err(e) => return Err(e),
                Ok(_) if Instant::now() > end => {
                    return Err(wg_error(format!(
                        "{} is still there after stopping boringtun",
                        self.name
                    )));
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}
