//! The userspace relay's command channel: commands sent from several threads while the
//! forwarding thread drains them are never lost, and the last one (stop included)
//! always reaches the thread.

use std::mem::ManuallyDrop;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mcgate_dataplane::relay::Relay;
use mcgate_dataplane::{Dataplane, DataplaneConfig};

/// Waits (bounded) until the relay publishes `mtu`, the last value it was given.
fn wait_for_mtu(relay: &Relay, mtu: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while relay.stats().underlay_mtu != mtu {
        assert!(
            Instant::now() < deadline,
            "the relay never applied its last command (MTU {mtu}); it holds {}",
            relay.stats().underlay_mtu
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn commands_racing_the_drain_all_arrive_and_stop_ends_the_thread() {
    // Not dropped on a failed assertion: dropping joins a thread that may never stop.
    let relay = ManuallyDrop::new(
        Relay::start(DataplaneConfig {
            underlay: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            underlay_mtu: 1500,
            wireguard: None,
        })
        .expect("start the relay on loopback"),
    );
    for round in 0..20 {
        std::thread::scope(|s| {
            for t in 0..2 {
                let relay = &relay;
                s.spawn(move || {
                    for i in 0..5_000 {
                        relay.set_underlay_mtu(1000 + t * 10_000 + i);
                    }
                });
            }
        });
        let last = 9_000 + round;
        relay.set_underlay_mtu(last);
        wait_for_mtu(&relay, last);
    }
    let (done_tx, done_rx) = mpsc::channel();
    let relay = ManuallyDrop::into_inner(relay);
    std::thread::spawn(move || {
        relay.shutdown();
        let _ = done_tx.send(());
    });
    assert!(
        done_rx.recv_timeout(Duration::from_secs(5)).is_ok(),
        "shutdown did not stop the relay's thread"
    );
}
