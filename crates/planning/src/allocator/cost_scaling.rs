//! An exact min-cost flow solver by cost scaling: Goldberg's push–relabel with ε-scaling.
//!
//! Costs are multiplied by `scale`, one more than a bound on the number of arcs of any simple
//! cycle of the residual network. A flow that is 1-optimal for the scaled costs (every
//! residual arc has reduced cost ≥ −1) is then optimal: a residual cycle of L < scale arcs
//! costs ≥ −L > −scale in scaled units, and its scaled cost is a multiple of `scale`, so ≥ 0.
//! In the allocator every arc has a zone at one end or none, zones are never adjacent, so a
//! simple cycle has at most 2 × (non-zone nodes) arcs: the bound is small (offices, not zones).
//!
//! Each phase divides ε by [`ALPHA`]; a phase ("refine") saturates every residual arc of
//! negative reduced cost and then discharges the excesses (FIFO) along admissible arcs,
//! relabelling a node (lowering its price to the best residual neighbour − ε) when it has none.
//! Global price updates (Dijkstra from the deficits) run at each phase start and after every
//! few relabels per node.
//!
//! **Status.** Exact and certified, but on the allocator's national instances it is slower
//! than the network simplex (100k applicants: ~45 s against ~5 s): the zones near full
//! offices fight price wars of many small relabels in every phase. It is kept as an
//! alternative ([`super::FlowSolver::CostScaling`]) and cross-checked in the tests.
//!
//! After the last phase the exact integer potentials are recovered by label-correcting shortest
//! paths on the residual network, started from ⌊price / scale⌋ (off by at most one per arc),
//! and the same certificate as the network simplex's is checked: capacities, balances and
//! complementary slackness on every arc. Passing it proves optimality.
//!
//! Like the network simplex it supports warm restarts: arcs may be added after a solve; the
//! next solve starts from the old flow with the exact potentials as prices, so only the new
//! arcs' violations need scaling away.

use std::collections::VecDeque;

use super::network_simplex::{FlowError, CAPACITY_UNBOUNDED};

/// ε divides by this much per phase (CS2 uses 8–16).
const ALPHA: i64 = 16;

/// A global price update after this many relabels per node (and at every phase start).
const RELABELS_PER_NODE_BETWEEN_UPDATES: u64 = 5;

/// Min-cost flow on a directed graph with node supplies (positive = source) summing to zero.
#[derive(Debug, Clone)]
pub struct CostScaling {
    supply: Vec<i64>,
    tail: Vec<u32>,
    head: Vec<u32>,
    cap: Vec<i64>,
    cost: Vec<i64>,
    flow: Vec<i64>,
    potential: Vec<i64>,
    cost_bound: i64,
    scale: i64,
    work: u64,
    solved: bool,
}

/// The residual network in adjacency (CSR) form: two half-edges per arc.
struct Residual {
    first: Vec<u32>,
    to: Vec<u32>,
    res: Vec<i64>,
    /// Unscaled cost (negated on backward half-edges).
    cost: Vec<i64>,
    rev: Vec<u32>,
    /// Forward half-edge of an arc without capacity: residual even when `res` says 0.
    unbounded: Vec<bool>,
    /// Forward half-edge of each arc.
    fwd: Vec<u32>,
}

impl CostScaling {
    /// Whether costs bounded by `cost_bound` fit the scaled arithmetic in i64 for residual
    /// cycles of at most `cycle_len_bound` arcs.
    pub fn fits(cost_bound: i64, cycle_len_bound: usize) -> bool {
        let scale = cycle_len_bound as i64 + 1;
        cost_bound
            .max(1)
            .checked_mul(scale)
            .and_then(|x| x.checked_mul(scale))
            .and_then(|x| x.checked_mul(64))
            .is_some()
    }

    /// A network with `supply.len()` nodes; `cost_bound` bounds |cost| of every arc ever added
    /// and `cycle_len_bound` the arc count of every simple cycle (`supply.len()` always works).
    /// Callers check [`CostScaling::fits`] first.
    pub fn new(supply: Vec<i64>, cost_bound: i64, cycle_len_bound: usize) -> Self {
        let n = supply.len();
        Self {
            supply,
            tail: Vec::new(),
            head: Vec::new(),
            cap: Vec::new(),
            cost: Vec::new(),
            flow: Vec::new(),
            potential: vec![0; n],
            cost_bound: cost_bound.max(0),
            scale: cycle_len_bound.min(n) as i64 + 1,
            work: 0,
            solved: false,
        }
    }

    /// Adds an arc `u -> v`; returns its id (0-based, in order of addition).
    pub fn add_arc(&mut self, u: usize, v: usize, cap: i64, cost: i64) -> Result<usize, FlowError> {
        let n = self.supply.len();
        assert!(u < n && v < n, "arc endpoint out of range");
        if cost.abs() > self.cost_bound {
            return Err(FlowError::CostOutOfBound {
                cost,
                bound: self.cost_bound,
            });
        }
        self.tail.push(u as u32);
        self.head.push(v as u32);
        self.cap.push(cap.max(0));
        self.cost.push(cost);
        self.flow.push(0);
        Ok(self.tail.len() - 1)
    }

    pub fn arc_count(&self) -> usize {
        self.tail.len()
    }

    /// Pushes and relabels over all solves (the analogue of simplex pivots).
    pub fn work(&self) -> u64 {
        self.work
    }

    pub fn flow(&self, arc: usize) -> i64 {
        self.flow[arc]
    }

    /// Exact node potential after a solve: `cost(u,v) + potential(u) - potential(v) >= 0` on
    /// every arc with spare capacity and `<= 0` on every arc with flow.
    pub fn potential(&self, node: usize) -> i64 {
        self.potential[node]
    }

    pub fn total_cost(&self) -> i128 {
        self.flow
            .iter()
            .zip(&self.cost)
            .map(|(&f, &c)| f as i128 * c as i128)
            .sum()
    }

    fn build_residual(&self, total: i64) -> Residual {
        let n = self.supply.len();
        let m = self.tail.len();
        let mut first = vec![0u32; n + 1];
        for a in 0..m {
            first[self.tail[a] as usize + 1] += 1;
            first[self.head[a] as usize + 1] += 1;
        }
        for v in 0..n {
            first[v + 1] += first[v];
        }
        let mut fill: Vec<u32> = first[..n].to_vec();
        let mut r = Residual {
            first,
            to: vec![0; 2 * m],
            res: vec![0; 2 * m],
            cost: vec![0; 2 * m],
            rev: vec![0; 2 * m],
            unbounded: vec![false; 2 * m],
            fwd: vec![0; m],
        };
        for a in 0..m {
            let (u, v) = (self.tail[a] as usize, self.head[a] as usize);
            let f = fill[u] as usize;
            fill[u] += 1;
            let b = fill[v] as usize;
            fill[v] += 1;
            // An unbounded arc never needs more than the total supply (+1 keeps it residual).
            let cap = if self.cap[a] == CAPACITY_UNBOUNDED {
                total + 1
            } else {
                self.cap[a]
            };
            r.to[f] = v as u32;
            r.res[f] = cap - self.flow[a];
            r.cost[f] = self.cost[a];
            r.rev[f] = b as u32;
            r.unbounded[f] = self.cap[a] == CAPACITY_UNBOUNDED;
            r.to[b] = u as u32;
            r.res[b] = self.flow[a];
            r.cost[b] = -self.cost[a];
            r.rev[b] = f as u32;
            r.fwd[a] = f as u32;
        }
        r
    }

    /// Solves (or continues after arcs were added) until optimal; `max_work` bounds the
    /// pushes and relabels of this call.
    pub fn solve(&mut self, max_work: u64) -> Result<(), FlowError> {
        let n = self.supply.len();
        let sum: i64 = self.supply.iter().sum();
        if sum != 0 {
            return Err(FlowError::Unbalanced(sum));
        }
        let total: i64 = self.supply.iter().filter(|&&s| s > 0).sum();
        let mut r = self.build_residual(total);
        let scale = self.scale;
        let mut price: Vec<i64> = if self.solved {
            self.potential.iter().map(|&p| p * scale).collect()
        } else {
            vec![0; n]
        };
        let mut excess = self.supply.clone();
        for a in 0..self.tail.len() {
            excess[self.tail[a] as usize] -= self.flow[a];
            excess[self.head[a] as usize] += self.flow[a];
        }
        // Largest violation of 0-optimality: where the scaling starts.
        let mut eps = 0i64;
        for v in 0..n {
            for h in r.first[v] as usize..r.first[v + 1] as usize {
                if r.res[h] > 0 {
                    let rc = r.cost[h] * scale + price[v] - price[r.to[h] as usize];
                    eps = eps.max(-rc);
                }
            }
        }
        if excess.iter().any(|&e| e != 0) {
            // Unrouted supply (the first solve): phase bounds hold from ε = the largest
            // scaled cost, as if the supply sat on arcs of that cost.
            let largest = self.cost.iter().map(|c| c.abs()).max().unwrap_or(0);
            eps = eps.max(largest * scale).max(1);
        }
        // Prices never need to fall further than this in a feasible problem (see `fits`).
        let price_floor = -(self.cost_bound.max(1) * scale * scale * 16);
        let mut work_left = max_work;
        let mut current: Vec<u32> = r.first[..n].to_vec();
        let mut queue: VecDeque<u32> = VecDeque::new();
        let update_every = (n as u64 * RELABELS_PER_NODE_BETWEEN_UPDATES).max(1);
        let mut heap = std::collections::BinaryHeap::new();
        let mut dist: Vec<i64> = vec![0; n];
        while eps > 0 {
            eps = (eps / ALPHA).max(1);
            let mut since_update = 0u64;
            // Refine: saturate the negative arcs, then discharge.
            for v in 0..n {
                for h in r.first[v] as usize..r.first[v + 1] as usize {
                    let q = r.res[h];
                    if q > 0 {
                        let w = r.to[h] as usize;
                        if r.cost[h] * scale + price[v] - price[w] < 0 {
                            r.res[h] = 0;
                            r.res[r.rev[h] as usize] += q;
                            excess[v] -= q;
                            excess[w] += q;
                        }
                    }
                }
            }
            queue.clear();
            for v in 0..n {
                current[v] = r.first[v];
                if excess[v] > 0 {
                    queue.push_back(v as u32);
                }
            }
            global_update(&r, &mut price, &excess, eps, scale, &mut heap, &mut dist)?;
            while let Some(v) = queue.pop_front() {
                let v = v as usize;
                if since_update >= update_every {
                    since_update = 0;
                    global_update(&r, &mut price, &excess, eps, scale, &mut heap, &mut dist)?;
                    // New prices may make arcs behind the current-arc pointers admissible.
                    current.copy_from_slice(&r.first[..n]);
                }
                let end = r.first[v + 1] as usize;
                while excess[v] > 0 {
                    let pv = price[v];
                    let mut h = current[v] as usize;
                    while h < end {
                        let q = r.res[h];
                        if q > 0 {
                            let w = r.to[h] as usize;
                            if r.cost[h] * scale + pv - price[w] < 0 {
                                let d = q.min(excess[v]);
                                r.res[h] -= d;
                                r.res[r.rev[h] as usize] += d;
                                excess[v] -= d;
                                if excess[w] <= 0 && excess[w] + d > 0 {
                                    queue.push_back(w as u32);
                                }
                                excess[w] += d;
                                work_left = work_left
                                    .checked_sub(1)
                                    .ok_or(FlowError::PivotLimit(max_work))?;
                                if excess[v] == 0 {
                                    break;
                                }
                            }
                        }
                        h += 1;
                    }
                    current[v] = h as u32;
                    if excess[v] == 0 {
                        break;
                    }
                    // Relabel: the best residual neighbour, less ε.
                    let mut best = i64::MIN;
                    for h in r.first[v] as usize..end {
                        if r.res[h] > 0 {
                            best = best.max(price[r.to[h] as usize] - r.cost[h] * scale);
                        }
                    }
                    if best == i64::MIN || best - eps < price_floor {
                        return Err(FlowError::Infeasible(excess[v]));
                    }
                    price[v] = best - eps;
                    current[v] = r.first[v];
                    since_update += 1;
                    work_left = work_left
                        .checked_sub(1)
                        .ok_or(FlowError::PivotLimit(max_work))?;
                }
            }
            if eps == 1 {
                break;
            }
        }
        self.work += max_work - work_left;
        for a in 0..self.tail.len() {
            self.flow[a] = r.res[r.rev[r.fwd[a] as usize] as usize];
        }
        self.exact_potentials(&r, &price, max_work)?;
        self.solved = true;
        self.check_certificate()
    }

    /// Exact potentials from 1-optimal prices: shortest-path label correcting on the residual
    /// network (no negative cycles at an optimum), started from ⌊price / scale⌋.
    fn exact_potentials(
        &mut self,
        r: &Residual,
        price: &[i64],
        max_work: u64,
    ) -> Result<(), FlowError> {
        let n = self.supply.len();
        let pi = &mut self.potential;
        for v in 0..n {
            pi[v] = price[v].div_euclid(self.scale);
        }
        let mut queued = vec![true; n];
        let mut queue: VecDeque<u32> = (0..n as u32).collect();
        let mut budget = max_work;
        while let Some(u) = queue.pop_front() {
            let u = u as usize;
            queued[u] = false;
            for h in r.first[u] as usize..r.first[u + 1] as usize {
                if r.res[h] > 0 || r.unbounded[h] {
                    let w = r.to[h] as usize;
                    let bound = pi[u] + r.cost[h];
                    if bound < pi[w] {
                        pi[w] = bound;
                        if !queued[w] {
                            queued[w] = true;
                            queue.push_back(w as u32);
                        }
                        budget = budget
                            .checked_sub(1)
                            .ok_or(FlowError::PivotLimit(max_work))?;
                    }
                }
            }
        }
        Ok(())
    }

    fn check_certificate(&self) -> Result<(), FlowError> {
        let n = self.supply.len();
        let mut balance = self.supply.clone();
        for a in 0..self.tail.len() {
            let (u, v, f) = (self.tail[a] as usize, self.head[a] as usize, self.flow[a]);
            if f < 0 || f > self.cap[a] {
                return Err(FlowError::Certificate(format!(
                    "arc {a} flow {f} outside [0, {}]",
                    self.cap[a]
                )));
            }
            balance[u] -= f;
            balance[v] += f;
            let rc = self.cost[a] + self.potential[u] - self.potential[v];
            if (f < self.cap[a] && rc < 0) || (f > 0 && rc > 0) {
                return Err(FlowError::Certificate(format!(
                    "arc {a} violates complementary slackness (flow {f}, reduced cost {rc})"
                )));
            }
        }
        if let Some(v) = (0..n).find(|&v| balance[v] != 0) {
            return Err(FlowError::Certificate(format!(
                "node {v} is out of balance by {}",
                balance[v]
            )));
        }
        Ok(())
    }
}

/// Goldberg's global price update: every node's price drops by ε × its distance to the
/// nearest deficit in the residual network, arcs measured as ⌊reduced cost / ε⌋ + 1 (≥ 0 by
/// ε-optimality), which keeps ε-optimality and points every excess straight at a deficit.
/// Stops once every node with excess is labelled; the rest drop by the last distance.
fn global_update(
    r: &Residual,
    price: &mut [i64],
    excess: &[i64],
    eps: i64,
    scale: i64,
    heap: &mut std::collections::BinaryHeap<std::cmp::Reverse<(i64, u32)>>,
    dist: &mut [i64],
) -> Result<(), FlowError> {
    use std::cmp::Reverse;
    const UNSEEN: i64 = i64::MAX;
    const DONE: i64 = -1;
    let n = price.len();
    heap.clear();
    let mut active_left = 0usize;
    for v in 0..n {
        if excess[v] < 0 {
            dist[v] = 0;
            heap.push(Reverse((0, v as u32)));
        } else {
            dist[v] = UNSEEN;
            if excess[v] > 0 {
                active_left += 1;
            }
        }
    }
    if active_left == 0 {
        return Ok(());
    }
    let mut settled: Vec<(u32, i64)> = Vec::new();
    let mut last = 0i64;
    while let Some(Reverse((d, w))) = heap.pop() {
        let w = w as usize;
        if dist[w] != d {
            continue;
        }
        dist[w] = DONE;
        settled.push((w as u32, d));
        last = d;
        if excess[w] > 0 {
            active_left -= 1;
            if active_left == 0 {
                break;
            }
        }
        for h in r.first[w] as usize..r.first[w + 1] as usize {
            let g = r.rev[h] as usize;
            if r.res[g] > 0 {
                let u = r.to[h] as usize;
                let du = dist[u];
                if du == DONE {
                    continue;
                }
                let rc = r.cost[g] * scale + price[u] - price[w];
                let len = rc.div_euclid(eps) + 1;
                let nd = d + len.max(0);
                if nd < du {
                    dist[u] = nd;
                    heap.push(Reverse((nd, u as u32)));
                }
            }
        }
    }
    if active_left > 0 {
        return Err(FlowError::Infeasible(active_left as i64));
    }
    for &(v, d) in &settled {
        price[v as usize] -= d * eps;
    }
    for v in 0..n {
        if dist[v] != DONE {
            price[v] -= last * eps;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::network_simplex::NetworkSimplex;
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn small_transportation_problem_is_optimal() {
        let mut cs = CostScaling::new(vec![3, 2, -4, -1], 10, 4);
        let a = cs.add_arc(0, 2, 10, 1).unwrap();
        let b = cs.add_arc(0, 3, 10, 4).unwrap();
        let c = cs.add_arc(1, 2, 1, 2).unwrap();
        let d = cs.add_arc(1, 3, 10, 3).unwrap();
        cs.solve(1000).unwrap();
        assert_eq!(cs.total_cost(), 8);
        assert_eq!(
            (cs.flow(a), cs.flow(b), cs.flow(c), cs.flow(d)),
            (3, 0, 1, 1)
        );
    }

    #[test]
    fn infeasible_is_reported() {
        let mut cs = CostScaling::new(vec![2, -2], 5, 2);
        cs.add_arc(0, 1, 1, 1).unwrap();
        assert!(matches!(cs.solve(10_000), Err(FlowError::Infeasible(_))));
    }

    #[test]
    fn warm_restart_uses_a_new_cheaper_arc() {
        let mut cs = CostScaling::new(vec![5, 0, -5], 100, 3);
        cs.add_arc(0, 2, CAPACITY_UNBOUNDED, 50).unwrap();
        cs.solve(100).unwrap();
        assert_eq!(cs.total_cost(), 250);
        cs.add_arc(0, 1, 3, 1).unwrap();
        cs.add_arc(1, 2, CAPACITY_UNBOUNDED, 1).unwrap();
        cs.solve(100).unwrap();
        assert_eq!(cs.total_cost(), 3 * 2 + 2 * 50);
    }

    /// Random problems (non-negative cycles only, as in any bounded problem) against the
    /// network simplex, cold and with arcs added between solves.
    #[test]
    fn random_problems_match_the_network_simplex() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for case in 0..400 {
            let n = rng.gen_range(2..10);
            let mut supply = vec![0i64; n];
            for _ in 0..rng.gen_range(1..6) {
                let (a, b) = (rng.gen_range(0..n), rng.gen_range(0..n));
                let q = rng.gen_range(1..9);
                supply[a] += q;
                supply[b] -= q;
            }
            // The complete backbone first (always feasible), random arcs in two batches.
            let mut arcs = Vec::new();
            for a in 0..n {
                for b in 0..n {
                    if a != b {
                        arcs.push((a, b, CAPACITY_UNBOUNDED, 100));
                    }
                }
            }
            for _ in 0..rng.gen_range(1..25) {
                let (a, b) = (rng.gen_range(0..n), rng.gen_range(0..n));
                if a != b {
                    let cap = if rng.gen_bool(0.3) {
                        CAPACITY_UNBOUNDED
                    } else {
                        rng.gen_range(0..6)
                    };
                    arcs.push((a, b, cap, rng.gen_range(0..40)));
                }
            }
            let split = rng.gen_range(n * (n - 1)..=arcs.len());
            let mut ns = NetworkSimplex::new(supply.clone(), 100);
            let mut cs = CostScaling::new(supply.clone(), 100, n);
            for &(a, b, c, w) in &arcs[..split] {
                ns.add_arc(a, b, c, w).unwrap();
                cs.add_arc(a, b, c, w).unwrap();
            }
            if case % 2 == 0 {
                ns.solve(1_000_000).unwrap();
                cs.solve(1_000_000)
                    .unwrap_or_else(|e| panic!("case {case} (first): {e}"));
                assert_eq!(cs.total_cost(), ns.total_cost(), "case {case} (first)");
            }
            for &(a, b, c, w) in &arcs[split..] {
                ns.add_arc(a, b, c, w).unwrap();
                cs.add_arc(a, b, c, w).unwrap();
            }
            ns.solve(1_000_000).unwrap();
            cs.solve(1_000_000)
                .unwrap_or_else(|e| panic!("case {case}: {e}"));
            assert_eq!(cs.total_cost(), ns.total_cost(), "case {case}");
        }
    }
}
