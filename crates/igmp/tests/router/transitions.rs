//! RFC 3376 6.4.1 (current-state records) and 6.4.2 (filter-mode-change and
//! source-list-change records): every row, with the new state, the timers and the
//! queries sent (6.6.3).

use mcgate_igmp::{Config, FilterMode::*, SourceFilter};

use crate::harness::*;

/// INCLUDE (A) with A = {1,2,3} set at 0 s; the clock then at 10 s.
fn include_a() -> Link {
    let mut l = Link::new(Config::default());
    l.rec(IS_IN, &[1, 2, 3]);
    l.wait_until(secs(10.0));
    l.take_sent();
    l
}

/// EXCLUDE (X,Y) with X = {1,2} (timers GMI from 0 s) and Y = {3,4}, group timer from
/// 0 s; the clock then at 10 s.
fn exclude_xy() -> Link {
    // On a shared link, so that the tests on a non-querier can elect another router.
    let mut l = Link::new(shared());
    l.rec(IS_EX, &[1, 2, 3, 4]);
    l.rec(ALLOW, &[1, 2]);
    assert_eq!(
        l.snapshot(),
        Some((
            Exclude,
            Some(gmi()),
            srcs(&[(1, Some(gmi())), (2, Some(gmi())), (3, None), (4, None)])
        ))
    );
    l.wait_until(secs(10.0));
    l.take_sent();
    l
}

fn later() -> std::time::Duration {
    secs(10.0) + gmi()
}

#[test]
fn rfc3376_6_4_1_include_is_in() {
    // INCLUDE (A) + IS_IN (B) -> INCLUDE (A+B); (B)=GMI.
    let mut l = include_a();
    l.rec(IS_IN, &[3, 4]);
    assert_eq!(
        l.snapshot(),
        Some((
            Include,
            None,
            srcs(&[
                (1, Some(gmi())),
                (2, Some(gmi())),
                (3, Some(later())),
                (4, Some(later()))
            ])
        ))
    );
    assert_eq!(l.take_sent(), vec![]);
    assert_eq!(l.filter(G), Some(SourceFilter::include(set(&[1, 2, 3, 4]))));
}

#[test]
fn rfc3376_6_4_1_include_is_ex() {
    // INCLUDE (A) + IS_EX (B) -> EXCLUDE (A*B, B-A); (B-A)=0, Delete (A-B),
    // Group Timer=GMI.
    let mut l = include_a();
    l.rec(IS_EX, &[3, 4]);
    assert_eq!(
        l.snapshot(),
        Some((Exclude, Some(later()), srcs(&[(3, Some(gmi())), (4, None)])))
    );
    assert_eq!(l.take_sent(), vec![]);
    assert_eq!(l.filter(G), Some(SourceFilter::exclude([s(4)])));
}

#[test]
fn rfc3376_6_4_1_exclude_is_in() {
    // EXCLUDE (X,Y) + IS_IN (A) -> EXCLUDE (X+A, Y-A); (A)=GMI.
    let mut l = exclude_xy();
    l.rec(IS_IN, &[2, 3, 5]);
    assert_eq!(
        l.snapshot(),
        Some((
            Exclude,
            Some(gmi()),
            srcs(&[
                (1, Some(gmi())),
                (2, Some(later())),
                (3, Some(later())),
                (4, None),
                (5, Some(later()))
            ])
        ))
    );
    assert_eq!(l.take_sent(), vec![]);
    assert_eq!(l.filter(G), Some(SourceFilter::exclude([s(4)])));
}

#[test]
fn rfc3376_6_4_1_exclude_is_ex() {
    // EXCLUDE (X,Y) + IS_EX (A) -> EXCLUDE (A-Y, Y*A); (A-X-Y)=GMI, Delete (X-A),
    // Delete (Y-A), Group Timer=GMI.
    let mut l = exclude_xy();
    l.rec(IS_EX, &[2, 3, 5]);
    assert_eq!(
        l.snapshot(),
        Some((
            Exclude,
            Some(later()),
            srcs(&[(2, Some(gmi())), (3, None), (5, Some(later()))])
        ))
    );
    assert_eq!(l.take_sent(), vec![]);
    assert_eq!(l.filter(G), Some(SourceFilter::exclude([s(3)])));
}

#[test]
fn rfc3376_6_4_2_include_allow() {
    // INCLUDE (A) + ALLOW (B) -> INCLUDE (A+B); (B)=GMI.
    let mut l = include_a();
    l.rec(ALLOW, &[3, 4]);
    assert_eq!(
        l.snapshot(),
        Some((
            Include,
            None,
            srcs(&[
                (1, Some(gmi())),
                (2, Some(gmi())),
                (3, Some(later())),
                (4, Some(later()))
            ])
        ))
    );
    assert_eq!(l.take_sent(), vec![]);
}

#[test]
fn rfc3376_6_4_2_include_block() {
    // INCLUDE (A) + BLOCK (B) -> INCLUDE (A); Send Q(G,A*B).
    // 6.6.3.2: the queried source's timer is lowered to LMQT and LMQC queries go out
    // LMQI apart; with no answer the source times out and is deleted (6.3).
    let mut l = include_a();
    l.rec(BLOCK, &[3, 4]);
    let lowered = secs(10.0) + lmqt();
    assert_eq!(
        l.snapshot(),
        Some((
            Include,
            None,
            srcs(&[(1, Some(gmi())), (2, Some(gmi())), (3, Some(lowered))])
        ))
    );
    l.wait_until(secs(13.0));
    assert_eq!(
        l.take_sent(),
        vec![
            (secs(10.0), G, gs_query(G, false, &[3])),
            (secs(11.0), G, gs_query(G, false, &[3])),
        ]
    );
    assert_eq!(l.filter(G), Some(SourceFilter::include(set(&[1, 2]))));
}

#[test]
fn rfc3376_6_4_2_include_to_ex() {
    // INCLUDE (A) + TO_EX (B) -> EXCLUDE (A*B, B-A); (B-A)=0, Delete (A-B),
    // Send Q(G,A*B), Group Timer=GMI.
    let mut l = include_a();
    l.rec(TO_EX, &[3, 4]);
    let lowered = secs(10.0) + lmqt();
    assert_eq!(
        l.snapshot(),
        Some((
            Exclude,
            Some(later()),
            srcs(&[(3, Some(lowered)), (4, None)])
        ))
    );
    l.wait_until(secs(13.0));
    assert_eq!(
        l.take_sent(),
        vec![
            (secs(10.0), G, gs_query(G, false, &[3])),
            (secs(11.0), G, gs_query(G, false, &[3])),
        ]
    );
    // 6.3: in EXCLUDE mode the timed-out source stays, at 0: not forwarded.
    assert_eq!(
        l.snapshot(),
        Some((Exclude, Some(later()), srcs(&[(3, None), (4, None)])))
    );
    assert_eq!(l.filter(G), Some(SourceFilter::exclude(set(&[3, 4]))));
}

#[test]
fn rfc3376_6_4_2_include_to_in() {
    // INCLUDE (A) + TO_IN (B) -> INCLUDE (A+B); (B)=GMI, Send Q(G,A-B).
    let mut l = include_a();
    l.rec(TO_IN, &[3, 4]);
    let lowered = secs(10.0) + lmqt();
    assert_eq!(
        l.snapshot(),
        Some((
            Include,
            None,
            srcs(&[
                (1, Some(lowered)),
                (2, Some(lowered)),
                (3, Some(later())),
                (4, Some(later()))
            ])
        ))
    );
    l.wait_until(secs(13.0));
    assert_eq!(
        l.take_sent(),
        vec![
            (secs(10.0), G, gs_query(G, false, &[1, 2])),
            (secs(11.0), G, gs_query(G, false, &[1, 2])),
        ]
    );
    assert_eq!(l.filter(G), Some(SourceFilter::include(set(&[3, 4]))));
}

#[test]
fn rfc3376_6_4_2_exclude_allow() {
    // EXCLUDE (X,Y) + ALLOW (A) -> EXCLUDE (X+A, Y-A); (A)=GMI.
    let mut l = exclude_xy();
    l.rec(ALLOW, &[2, 3, 5]);
    assert_eq!(
        l.snapshot(),
        Some((
            Exclude,
            Some(gmi()),
            srcs(&[
                (1, Some(gmi())),
                (2, Some(later())),
                (3, Some(later())),
                (4, None),
                (5, Some(later()))
            ])
        ))
    );
    assert_eq!(l.take_sent(), vec![]);
}

#[test]
fn rfc3376_6_4_2_exclude_block() {
    // EXCLUDE (X,Y) + BLOCK (A) -> EXCLUDE (X+(A-Y), Y); (A-X-Y)=Group Timer,
    // Send Q(G,A-Y).
    let mut l = exclude_xy();
    l.rec(BLOCK, &[2, 3, 5]);
    let lowered = secs(10.0) + lmqt();
    // Source 5 took the group timer, then the query lowered it with source 2.
    assert_eq!(
        l.snapshot(),
        Some((
            Exclude,
            Some(gmi()),
            srcs(&[
                (1, Some(gmi())),
                (2, Some(lowered)),
                (3, None),
                (4, None),
                (5, Some(lowered))
            ])
        ))
    );
    l.wait_until(secs(13.0));
    assert_eq!(
        l.take_sent(),
        vec![
            (secs(10.0), G, gs_query(G, false, &[2, 5])),
            (secs(11.0), G, gs_query(G, false, &[2, 5])),
        ]
    );
    assert_eq!(l.filter(G), Some(SourceFilter::exclude(set(&[2, 3, 4, 5]))));
}

#[test]
fn rfc3376_6_4_2_exclude_block_source_takes_group_timer() {
    // (A-X-Y)=Group Timer: seen directly on a non-querier, which sends no Q(G,A-Y)
    // and so does not lower the timer.
    let mut l = exclude_xy();
    l.query_v3(
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::UNSPECIFIED,
        false,
        &[],
    );
    assert!(!l.igmp.is_querier());
    l.rec(BLOCK, &[5]);
    assert_eq!(l.state().unwrap().sources[&s(5)], Some(l.at(gmi())));
    assert_eq!(l.take_sent(), vec![]);
}

#[test]
fn rfc3376_6_4_2_exclude_to_ex() {
    // EXCLUDE (X,Y) + TO_EX (A) -> EXCLUDE (A-Y, Y*A); (A-X-Y)=Group Timer,
    // Delete (X-A), Delete (Y-A), Send Q(G,A-Y), Group Timer=GMI.
    let mut l = exclude_xy();
    l.rec(TO_EX, &[2, 3, 5]);
    let lowered = secs(10.0) + lmqt();
    assert_eq!(
        l.snapshot(),
        Some((
            Exclude,
            Some(later()),
            srcs(&[(2, Some(lowered)), (3, None), (5, Some(lowered))])
        ))
    );
    l.wait_until(secs(13.0));
    assert_eq!(
        l.take_sent(),
        vec![
            (secs(10.0), G, gs_query(G, false, &[2, 5])),
            (secs(11.0), G, gs_query(G, false, &[2, 5])),
        ]
    );
    assert_eq!(l.filter(G), Some(SourceFilter::exclude(set(&[2, 3, 5]))));
}

#[test]
fn rfc3376_6_4_2_exclude_to_ex_on_non_querier() {
    // (A-X-Y)=Group Timer (the old one), then Group Timer=GMI.
    let mut l = exclude_xy();
    l.query_v3(
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::UNSPECIFIED,
        false,
        &[],
    );
    l.rec(TO_EX, &[2, 3, 5]);
    assert_eq!(
        l.snapshot(),
        Some((
            Exclude,
            Some(later()),
            srcs(&[(2, Some(gmi())), (3, None), (5, Some(gmi()))])
        ))
    );
}

#[test]
fn rfc3376_6_4_2_exclude_to_in() {
    // EXCLUDE (X,Y) + TO_IN (A) -> EXCLUDE (X+A, Y-A); (A)=GMI, Send Q(G,X-A),
    // Send Q(G). With no answer: X-A times out to 0, then the group timer (lowered to
    // LMQT by Q(G), 6.6.3.1) expires and the group switches to INCLUDE (A) (6.5).
    let mut l = exclude_xy();
    l.rec(TO_IN, &[2, 3, 5]);
    let lowered = secs(10.0) + lmqt();
    assert_eq!(
        l.snapshot(),
        Some((
            Exclude,
            Some(lowered),
            srcs(&[
                (1, Some(lowered)),
                (2, Some(later())),
                (3, Some(later())),
                (4, None),
                (5, Some(later()))
            ])
        ))
    );
    l.wait_until(secs(13.0));
    let group_q = gs_query(G, false, &[]);
    assert_eq!(
        l.take_sent(),
        vec![
            (secs(10.0), G, gs_query(G, false, &[1])),
            (secs(10.0), G, group_q.clone()),
            (secs(11.0), G, group_q),
            (secs(11.0), G, gs_query(G, false, &[1])),
        ]
    );
    assert_eq!(
        l.snapshot(),
        Some((
            Include,
            None,
            srcs(&[(2, Some(later())), (3, Some(later())), (5, Some(later()))])
        ))
    );
    assert_eq!(l.filter(G), Some(SourceFilter::include(set(&[2, 3, 5]))));
}

use std::net::Ipv4Addr;
