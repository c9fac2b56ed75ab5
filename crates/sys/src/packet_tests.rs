//! Unit tests of `packet.rs`.

use super::*;

#[test]
fn filters_jump_inside_their_programs() {
    for prog in [&IGMP_PROGRAM[..], &DATA_PROGRAM[..]] {
        for (i, ins) in prog.iter().enumerate() {
            if ins.code as u32 & 0x07 == libc::BPF_JMP {
                assert!(i + 1 + (ins.jt as usize) < prog.len());
                assert!(i + 1 + (ins.jf as usize) < prog.len());
            }
        }
        assert_eq!(prog.last().unwrap().code as u32, RET_K);
    }
}

#[test]
fn frame_batch_bounds_are_checked() {
    let mut b = FrameBatch::new(128);
    assert!(b.frame(0).is_none());
    assert!(b.slot_mut(MAX_BATCH).is_none());
    assert_eq!(b.slot_mut(0).unwrap().len(), 128);
}
