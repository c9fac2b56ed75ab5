//! Unit tests of `tunnel.rs`.

use super::*;

#[test]
fn loopback_batch_round_trip() {
    let a = TunnelSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
    // Learn the ephemeral port through the kernel.
    let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dst = match b.local_addr().unwrap() {
        std::net::SocketAddr::V4(v4) => v4,
        std::net::SocketAddr::V6(_) => unreachable!(),
    };
    let hdr = [8u8, 0, 0, 0, 0, 0, 1, 0];
    let payloads: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10 + i as usize]).collect();
    let dgrams: Vec<Datagram<'_>> = payloads
        .iter()
        .map(|p| Datagram {
            dst,
            header: &hdr,
            payload: p,
        })
        .collect();
    let out = a.send_all(&dgrams);
    assert_eq!(out.sent, 5);
    let mut buf = [0u8; 64];
    for i in 0..5u8 {
        let (n, _) = b.recv_from(&mut buf).unwrap();
        assert_eq!(n, 8 + 10 + i as usize);
        assert_eq!(&buf[..8], &hdr);
        assert!(buf[8..n].iter().all(|&x| x == i));
    }
    // And back, received in one batch.
    let back = TunnelSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let _ = back;
    let c = TunnelSocket::bind(dst_free()).unwrap();
    for i in 0..3u8 {
        b.send_to(&[i; 20], std::net::SocketAddr::V4(c.local()))
            .unwrap();
    }
    let mut batch = FrameBatch::new(128);
    let mut sources = [SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0); MAX_BATCH];
    let mut got = 0;
    for _ in 0..100 {
        got += c.recv_batch(&mut batch, &mut sources).unwrap();
        if got >= 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(got, 3);
    assert_eq!(sources[0], dst);
    assert_eq!(batch.frame(0).unwrap().0, &[0u8; 20][..]);
}

#[test]
fn gso_sends_the_same_datagrams() {
    let tx = TunnelSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = |s: &std::net::UdpSocket| match s.local_addr().unwrap() {
        std::net::SocketAddr::V4(v4) => v4,
        std::net::SocketAddr::V6(_) => unreachable!(),
    };
    let (da, db) = (addr(&a), addr(&b));
    // Seven frames in a batch: 0..5 of 100 bytes, 5..7 of 60 bytes.
    let mut batch = FrameBatch::new(256);
    for i in 0..7usize {
        let slot = batch.slot_mut(i).unwrap();
        slot.fill(i as u8);
    }
    batch.count = 7;
    for i in 0..7 {
        batch.lens[i] = 256;
    }
    let len = |i: usize| if i < 5 { 100 } else { 60 };
    let mut items = Vec::new();
    for i in 0..7usize {
        for dst in [da, db] {
            items.push(TunnelTx {
                dst,
                header: [8, 0, 0, 0, 0, 0, 7, 0],
                part: Part {
                    slot: i as u16,
                    offset: 0,
                    len: len(i),
                },
            });
        }
    }
    let mut scratch = GsoScratch::default();
    let out = tx.send_parts_gso(&batch, &items, &mut scratch).unwrap();
    assert_eq!(out.sent, 14, "{out:?}");
    // Two runs per destination (5 of 100 bytes, 2 of 60): four messages in all.
    assert_eq!(scratch.spans.len(), 4);
    for sock in [&a, &b] {
        let mut buf = [0u8; 512];
        for i in 0..7usize {
            let n = sock.recv(&mut buf).unwrap();
            assert_eq!(n, 8 + usize::from(len(i)), "datagram {i}");
            assert_eq!(&buf[..8], &[8, 0, 0, 0, 0, 0, 7, 0]);
            assert!(buf[8..n].iter().all(|&x| x == i as u8), "datagram {i}");
        }
    }
}

#[test]
fn gro_receives_a_gso_send_whole_and_says_how_to_split_it() {
    let rx = TunnelSocket::bind(dst_free()).unwrap();
    rx.enable_gro().unwrap();
    let tx = TunnelSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let mut batch = FrameBatch::new(256);
    for i in 0..4usize {
        batch.slot_mut(i).unwrap().fill(i as u8);
        batch.lens[i] = 256;
    }
    batch.count = 4;
    let items: Vec<TunnelTx> = (0..4u16)
        .map(|i| TunnelTx {
            dst: rx.local(),
            header: [8, 0, 0, 0, 0, 0, 9, 0],
            part: Part {
                slot: i,
                offset: 0,
                len: 100,
            },
        })
        .collect();
    let out = tx
        .send_parts_gso(&batch, &items, &mut GsoScratch::default())
        .unwrap();
    assert_eq!(out.sent, 4);
    let mut got = FrameBatch::new(65536);
    let mut sources = [SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0); MAX_BATCH];
    let mut n = 0;
    for _ in 0..100 {
        n = rx.recv_batch(&mut got, &mut sources).unwrap();
        if n > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(n, 1, "one coalesced datagram");
    let (bytes, _) = got.frame(0).unwrap();
    assert_eq!(bytes.len(), 4 * 108);
    assert_eq!(got.segment_size(0), Some(108));
    for (i, seg) in bytes.chunks(108).enumerate() {
        assert_eq!(&seg[..8], &[8, 0, 0, 0, 0, 0, 9, 0]);
        assert!(seg[8..].iter().all(|&x| x == i as u8));
    }
}

fn dst_free() -> SocketAddrV4 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    match s.local_addr().unwrap() {
        std::net::SocketAddr::V4(v4) => v4,
        std::net::SocketAddr::V6(_) => unreachable!(),
    }
}
