//! Properties of the shard map and the node map, for random shard counts and MOVED sequences.

use proptest::prelude::*;
use slotline_router::{Addr, Node, NodeMap, Role, ShardMap, Slot, SlotRange};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every slot maps to exactly one shard; ranges are contiguous, in order, cover all slots,
    /// agree with `shard_of`, and differ in size by at most one slot.
    #[test]
    fn shard_ranges_partition_the_slots_evenly(n in 1usize..=16384) {
        let map = ShardMap::new(n).unwrap();
        prop_assert_eq!(map.shard_count(), n);
        let mut next = 0u32;
        let (mut min, mut max) = (usize::MAX, 0);
        for shard in 0..n {
            let r = map.slots(shard).unwrap();
            prop_assert_eq!(u32::from(r.start().get()), next, "shard {} starts where {} ended", shard, shard.wrapping_sub(1));
            // Check every slot of small maps, the range ends of large ones (same property).
            if n <= 256 {
                for slot in r.iter() {
                    prop_assert_eq!(map.shard_of(slot), shard);
                }
            } else {
                prop_assert_eq!(map.shard_of(r.start()), shard);
                prop_assert_eq!(map.shard_of(r.end()), shard);
            }
            next = u32::from(r.end().get()) + 1;
            min = min.min(r.len());
            max = max.max(r.len());
        }
        prop_assert_eq!(next, 16384);
        prop_assert!(max - min <= 1, "sizes {}..={}", min, max);
        prop_assert_eq!(map.slots(n), None);
    }

    #[test]
    fn bad_shard_counts_are_errors(n in prop_oneof![Just(0usize), 16385usize..1 << 40]) {
        prop_assert_eq!(ShardMap::new(n).unwrap_err().requested(), n);
    }

}

proptest! {
    // Each case compares all 16384 slots after every move: fewer cases keep it quick.
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A MOVED changes the owner of exactly that slot, to exactly that address.
    #[test]
    fn apply_moved_changes_exactly_one_slot(
        masters in 1u16..6,
        moves in proptest::collection::vec((0u16..16384, 0u16..8), 1..16),
    ) {
        let mut map = NodeMap::new();
        let shards = ShardMap::new(usize::from(masters)).unwrap();
        for k in 0..usize::from(masters) {
            let port = 7000 + u16::try_from(k).unwrap();
            map.assign(shards.slots(k).unwrap(), Node::new(Addr::new("10.0.0.1", port), Role::Master));
        }
        for (slot, port) in moves {
            let slot = Slot::new(slot).unwrap();
            let before: Vec<Option<Addr>> = Slot::all().map(|s| map.master_addr(s).cloned()).collect();
            let addr = Addr::new("10.0.0.1", 7000 + port);
            let changed = map.apply_moved(slot, addr.clone());
            prop_assert_eq!(changed, before[slot.index()].as_ref() != Some(&addr));
            prop_assert_eq!(map.master_addr(slot), Some(&addr));
            for s in Slot::all().filter(|&s| s != slot) {
                prop_assert_eq!(map.master_addr(s), before[s.index()].as_ref());
            }
            prop_assert!(map.is_complete());
            let total: usize = map.masters().map(|m| map.slot_ranges(&m.addr).iter().map(SlotRange::len).sum::<usize>()).sum();
            prop_assert_eq!(total, 16384);
        }
    }
}
