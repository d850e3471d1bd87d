//! Account managers' books of key customers: how customers are spread over managers
//! (least utilised first) and how books are rebalanced so that no manager is over
//! capacity and loads are even, moving as few customers as possible.

/// A manager's book size and capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Customers in the book.
    pub size: u32,
    /// Most customers the book may hold (at least 1).
    pub capacity: u32,
}

impl Load {
    /// Customers the book can still take.
    pub fn spare(self) -> u32 {
        self.capacity.saturating_sub(self.size)
    }
}

/// How many of `count` customers each receiver takes, one at a time to the least
/// utilised (size / capacity; ties to the earlier receiver). Without `allow_over`, only
/// spare capacity is used and None answers that it does not suffice.
pub fn spread(count: u32, receivers: &[Load], allow_over: bool) -> Option<Vec<u32>> {
    let mut given = vec![0u32; receivers.len()];
    if count == 0 {
        return Some(given);
    }
    if receivers.is_empty() {
        return None;
    }
    if !allow_over && receivers.iter().map(|r| u64::from(r.spare())).sum::<u64>() < u64::from(count) {
        return None;
    }
    for _ in 0..count {
        let next = receivers
            .iter()
            .enumerate()
            .filter(|(i, r)| allow_over || r.size + given[*i] < r.capacity)
            .min_by(|(i, a), (j, b)| {
                // a.size/a.cap < b.size/b.cap, compared exactly.
                let left = u64::from(a.size + given[*i]) * u64::from(b.capacity.max(1));
                let right = u64::from(b.size + given[*j]) * u64::from(a.capacity.max(1));
                left.cmp(&right).then(i.cmp(j))
            })
            .map(|(i, _)| i)?;
        given[next] += 1;
    }
    Some(given)
}

/// A move of `count` customers from one manager to another (indexes into the loads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    /// The giving manager.
    pub from: usize,
    /// The receiving manager.
    pub to: usize,
    /// Customers moved.
    pub count: u32,
}

/// The plan of a rebalancing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebalance {
    /// The moves, giving manager by giving manager.
    pub moves: Vec<Move>,
    /// Each manager's book size after the moves.
    pub after: Vec<u32>,
    /// Customers still beyond their manager's capacity (when the books together exceed
    /// every capacity).
    pub remaining_over_capacity: u32,
}

/// The book sizes the loads should have: proportional to capacity (every manager at the
/// average utilisation, remainders to the largest fractions) when everything fits;
/// otherwise every manager full and the excess left with those who hold it.
fn targets(loads: &[Load]) -> Vec<u32> {
    let total: u64 = loads.iter().map(|l| u64::from(l.size)).sum();
    let capacity: u64 = loads.iter().map(|l| u64::from(l.capacity)).sum();
    if capacity == 0 {
        return loads.iter().map(|l| l.size).collect();
    }
    if total > capacity {
        // Fill every book with spare places, taking from the most overloaded first.
        let mut spare: u32 = loads.iter().map(|l| l.spare()).sum();
        let mut targets: Vec<u32> = loads.iter().map(|l| l.size.max(l.capacity)).collect();
        let mut donors: Vec<usize> = (0..loads.len()).filter(|&i| loads[i].size > loads[i].capacity).collect();
        donors.sort_by_key(|&i| std::cmp::Reverse(loads[i].size - loads[i].capacity));
        for i in donors {
            let give = (loads[i].size - loads[i].capacity).min(spare);
            targets[i] = loads[i].size - give;
            spare -= give;
        }
        return targets;
    }
    let mut targets: Vec<u32> = loads.iter().map(|l| (total * u64::from(l.capacity) / capacity) as u32).collect();
    let assigned: u64 = targets.iter().map(|t| u64::from(*t)).sum();
    let mut order: Vec<usize> = (0..loads.len()).collect();
    // Largest fractional part first; among equals, the one holding most keeps more
    // (fewer moves), then the earlier.
    order.sort_by(|&a, &b| {
        let fa = total * u64::from(loads[a].capacity) % capacity;
        let fb = total * u64::from(loads[b].capacity) % capacity;
        fb.cmp(&fa).then(loads[b].size.cmp(&loads[a].size)).then(a.cmp(&b))
    });
    for &i in order.iter().take((total - assigned) as usize) {
        targets[i] += 1;
    }
    targets
}

/// Plans the moves that bring every book to its target: customers leave only books
/// above their target, and only as many as the difference, so no plan moves fewer.
pub fn rebalance(loads: &[Load]) -> Rebalance {
    let targets = targets(loads);
    let mut surplus: Vec<(usize, u32)> = Vec::new();
    let mut deficit: Vec<(usize, u32)> = Vec::new();
    for (i, (load, target)) in loads.iter().zip(&targets).enumerate() {
        if load.size > *target {
            surplus.push((i, load.size - target));
        } else if load.size < *target {
            deficit.push((i, target - load.size));
        }
    }
    let mut moves = Vec::new();
    let mut receivers = deficit.into_iter();
    let mut receiving = receivers.next();
    for (from, mut left) in surplus {
        while left > 0 {
            let Some((to, want)) = receiving.as_mut() else { break };
            let count = left.min(*want);
            moves.push(Move { from, to: *to, count });
            left -= count;
            *want -= count;
            if *want == 0 {
                receiving = receivers.next();
            }
        }
    }
    let mut after: Vec<u32> = loads.iter().map(|l| l.size).collect();
    for m in &moves {
        after[m.from] -= m.count;
        after[m.to] += m.count;
    }
    let remaining_over_capacity = after.iter().zip(loads).map(|(a, l)| a.saturating_sub(l.capacity)).sum();
    Rebalance { moves, after, remaining_over_capacity }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(size: u32, capacity: u32) -> Load {
        Load { size, capacity }
    }

    #[test]
    fn spreading_fills_the_least_utilised_first_within_capacity() {
        let receivers = [load(5, 10), load(0, 10), load(9, 10)];
        assert_eq!(spread(6, &receivers, false), Some(vec![1, 5, 0]));
        assert_eq!(spread(17, &receivers, false), None, "only 16 places are free");
        assert_eq!(spread(17, &receivers, true).map(|g| g.iter().sum::<u32>()), Some(17));
        assert_eq!(spread(0, &[], false), Some(vec![]));
        assert_eq!(spread(1, &[], true), None);
    }

    #[test]
    fn rebalancing_evens_utilisation_with_the_fewest_moves() {
        // 30 customers over capacities 10, 10, 20: targets 7/8, 7/8, 15.
        let loads = [load(14, 10), load(10, 10), load(6, 20)];
        let plan = rebalance(&loads);
        let moved: u32 = plan.moves.iter().map(|m| m.count).sum();
        assert_eq!(plan.after.iter().sum::<u32>(), 30);
        assert!(plan.after.iter().zip(&loads).all(|(a, l)| *a <= l.capacity));
        assert_eq!(plan.after[2], 15);
        // Only the surplus above target moves: 14→7 or 8 and 10→7 or 8 give 9 in all.
        assert_eq!(moved, 9);
        assert!(plan.moves.iter().all(|m| m.to == 2));
        assert_eq!(plan.remaining_over_capacity, 0);
    }

    #[test]
    fn balanced_books_do_not_move() {
        let plan = rebalance(&[load(5, 10), load(10, 20)]);
        assert!(plan.moves.is_empty());
    }

    #[test]
    fn books_beyond_every_capacity_fill_everyone_and_report_the_rest() {
        let plan = rebalance(&[load(25, 10), load(2, 10)]);
        assert_eq!(plan.after, vec![17, 10]);
        assert_eq!(plan.moves, vec![Move { from: 0, to: 1, count: 8 }]);
        assert_eq!(plan.remaining_over_capacity, 7);
    }
}
