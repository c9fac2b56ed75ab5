//! `mcgate lab _forward`: the lab's TCP forwarder, which makes the controller's API (and
//! its web view at `/ui/`) reachable from the root network namespace.
//!
//! The lab's controller listens inside its own namespace, which nothing in the root
//! namespace can reach. The forwarder listens on `127.0.0.1:PORT` in the root namespace
//! (never on any other address) and copies every connection byte for byte to the first
//! controller that accepts one: TLS passes through untouched, end to end, so the browser
//! or `curl` checks the controller's own certificate and the controller checks the
//! bearer credential as for any client.
//!
//! A socket belongs to the network namespace of the thread that created it, whatever
//! that thread does later. So the listener is made by the main thread, in the root
//! namespace, and each outgoing connection by a short-lived thread that first enters the
//! target's namespace (`setns` on `/run/netns/<ns>`); the connected socket then moves to
//! the async runtime, which copies in both directions.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// How long one controller may take to accept a connection before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections relayed at once; more wait to be accepted (a browser opens a handful).
const MAX_CONNECTIONS: usize = 256;

/// Where `ip netns` keeps the named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// Where a connection goes: an address, reached from inside a named namespace (or from
/// the forwarder's own namespace when `netns` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The namespace the connection is made from.
    pub netns: Option<String>,
    /// The controller's address there.
    pub addr: SocketAddrV4,
}

impl Target {
    /// Parses `NS=IP:PORT` or `IP:PORT` (the `--to` flag).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (netns, addr) = match s.split_once('=') {
            Some((ns, addr)) => (Some(ns), addr),
            None => (None, s),
        };
        if let Some(ns) = netns
            && (ns.is_empty() || ns.contains('/') || ns == "." || ns == "..")
        {
            return Err(format!(
                "{s:?}: {ns:?} is not a namespace name; write NS=IP:PORT with NS as `ip netns list` shows it"
            ));
        }
        let addr = addr
            .parse()
            .map_err(|_| format!("{s:?}: {addr:?} is not IP:PORT; write e.g. 10.0.255.254:7400"))?;
        Ok(Self {
            netns: netns.map(str::to_string),
            addr,
        })
    }

    /// As `--to` takes it.
    pub fn arg(&self) -> String {
        match &self.netns {
            Some(ns) => format!("{ns}={}", self.addr),
            None => self.addr.to_string(),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.netns {
            Some(ns) => write!(f, "{} in {ns}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// Runs the forwarder until it is stopped: listens on `127.0.0.1:port` (any free port
/// for 0), writes the address it got to `ready` (if given) once listening, then relays.
pub fn run(port: u16, ready: Option<&Path>, targets: &[String]) -> ExitCode {
    match run_inner(port, ready, targets) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(port: u16, ready: Option<&Path>, targets: &[String]) -> Result<(), String> {
    let targets = targets
        .iter()
        .map(|t| Target::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    if targets.is_empty() {
        return Err("no --to target: nothing to forward to".into());
    }
    // Loopback only: the view carries the lab's domain to whoever can connect.
    let listener = std::net::TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
        .map_err(|e| {
            format!(
                "cannot listen on 127.0.0.1:{port}: {e}; choose another port (`mcgate lab up --ui-port N`, or 0 for any free one)"
            )
        })?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    rt.block_on(async move {
        let listener = TcpListener::from_std(listener).map_err(|e| e.to_string())?;
        println!(
            "forwarding {local} to {}",
            targets
                .iter()
                .map(Target::to_string)
                .collect::<Vec<_>>()
                .join(", then ")
        );
        if let Some(path) = ready {
            write_ready(path, local)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        let targets = Arc::new(targets);
        tokio::select! {
            () = serve(listener, Arc::clone(&targets)) => {}
            () = lab_gone(&targets) => {
                println!("the lab's namespaces are gone: stopping");
            }
        }
        Ok(())
    })
}

/// Writes the listening address atomically, so a reader never sees half of it.
fn write_ready(path: &Path, addr: SocketAddr) -> std::io::Result<()> {
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    std::fs::write(&tmp, format!("{addr}\n"))?;
    std::fs::rename(&tmp, path)
}

/// Reads what [`run`] wrote to its `ready` file: the port it listens on.
pub fn read_ready(path: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(path).ok()?;
    let addr: SocketAddrV4 = text.trim().parse().ok()?;
    (addr.ip().is_loopback() && addr.port() != 0).then_some(addr.port())
}

/// Whether every target lives in a namespace that no longer exists.
fn namespaces_gone(targets: &[Target]) -> bool {
    targets.iter().all(|t| {
        t.netns
            .as_ref()
            .is_some_and(|ns| !Path::new(NETNS_DIR).join(ns).exists())
    })
}

/// Returns once the lab is gone. `lab down` stops the forwarder by its PID; this is for
/// a lab whose state directory was lost, whose `lab down` finds only its namespaces.
async fn lab_gone(targets: &[Target]) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if namespaces_gone(targets) {
            return;
        }
    }
}

/// Accepts connections for ever, relaying each to the first target that takes it.
pub async fn serve(listener: TcpListener, targets: Arc<Vec<Target>>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (inbound, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors or the like: say so, and let the moment pass.
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let targets = Arc::clone(&targets);
        tokio::spawn(async move {
            let _permit = permit;
            relay(inbound, peer, &targets).await;
        });
    }
}

async fn relay(mut inbound: TcpStream, peer: SocketAddr, targets: &[Target]) {
    let mut failures = Vec::new();
    for t in targets {
        match connect(t).await {
            Ok(mut outbound) => {
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                // Either side closing or resetting ends the relay; nothing to report.
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                return;
            }
            Err(e) => failures.push(format!("{t}: {e}")),
        }
    }
    eprintln!(
        "connection from {peer}: no controller accepted it ({}); see `mcgate lab status`",
        failures.join("; ")
    );
}

/// Connects to `t` from inside its namespace, on a thread of its own (see the module
/// documentation), and hands the socket to the runtime.
async fn connect(t: &Target) -> std::io::Result<TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let target = t.clone();
    std::thread::Builder::new()
        .name("lab-forward-connect".into())
        .spawn(move || {
            let _ = tx.send(connect_blocking(&target));
        })?;
    let stream = rx
        .await
        .map_err(|_| std::io::Error::other("the connecting thread ended without an answer"))??;
    stream.set_nonblocking(true)?;
    TcpStream::from_std(stream)
}

/// Enters the target's namespace (this thread only, for the rest of its short life)
/// and connects there.
fn connect_blocking(t: &Target) -> std::io::Result<std::net::TcpStream> {
    if let Some(ns) = &t.netns {
        let path = Path::new(NETNS_DIR).join(ns);
        let fd = std::fs::File::open(&path).map_err(|e| {
            std::io::Error::new(e.kind(), format!("namespace {}: {e}", path.display()))
        })?;
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(std::io::Error::from)?;
    }
    std::net::TcpStream::connect_timeout(&SocketAddr::V4(t.addr), CONNECT_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn targets_parse_with_and_without_a_namespace() {
        let t = Target::parse("mcgl-ha-ctl-1=10.0.255.242:7400").unwrap();
        assert_eq!(t.netns.as_deref(), Some("mcgl-ha-ctl-1"));
        assert_eq!(t.addr, "10.0.255.242:7400".parse().unwrap());
        assert_eq!(Target::parse(&t.arg()).unwrap(), t);
        assert_eq!(t.to_string(), "10.0.255.242:7400 in mcgl-ha-ctl-1");
        let here = Target::parse("127.0.0.1:9").unwrap();
        assert_eq!(here.netns, None);
        assert_eq!(here.arg(), "127.0.0.1:9");
        for bad in [
            "=10.0.0.1:1",
            "../x=10.0.0.1:1",
            "a/b=10.0.0.1:1",
            "ns=10.0.0.1",
            "ns=host:1",
            "",
        ] {
            let e = Target::parse(bad).unwrap_err();
            assert!(e.contains("write"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_lab_is_gone_when_no_target_namespace_exists() {
        let gone = Target::parse("mcgl-no-such-lab-ctl=10.0.255.254:7400").unwrap();
        let here = Target::parse("127.0.0.1:9").unwrap();
        assert!(namespaces_gone(std::slice::from_ref(&gone)));
        assert!(!namespaces_gone(&[gone, here]));
    }

    #[test]
    fn the_ready_file_holds_a_loopback_port_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ui.addr");
        assert_eq!(read_ready(&path), None);
        write_ready(&path, "127.0.0.1:40123".parse().unwrap()).unwrap();
        assert_eq!(read_ready(&path), Some(40123));
        for junk in [
            "",
            "0.0.0.0:1\n",
            "127.0.0.1:0",
            "not an address",
            "\u{0}\u{ff}",
        ] {
            std::fs::write(&path, junk).unwrap();
            assert_eq!(read_ready(&path), None, "{junk:?}");
        }
    }

    /// Bytes go through unchanged both ways, a half-close included; a dead first
    /// target falls through to the next.
    #[tokio::test]
    async fn relays_byte_for_byte_to_the_first_target_that_accepts() {
        // A port nothing listens on: bound, then closed.
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got.reverse();
            s.write_all(&got).await.unwrap();
        });
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_addr = front.local_addr().unwrap();
        let targets = ["mcgl-no-such-lab-ctl=10.0.255.254:7400".to_string()]
            .into_iter()
            .chain([dead, echo_addr].iter().map(SocketAddr::to_string))
            .map(|a| Target::parse(&a).unwrap())
            .collect();
        tokio::spawn(serve(front, Arc::new(targets)));
        let mut c = TcpStream::connect(front_addr).await.unwrap();
        let sent: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        c.write_all(&sent).await.unwrap();
        c.shutdown().await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        back.reverse();
        assert_eq!(back, sent);
    }
}
