//! An exact primal network simplex for min-cost flow with integer (i64) costs and capacities.
//!
//! The design follows the classic spanning-tree implementation (parent / thread / successor
//! lists, altering-candidate-list pivoting over search blocks, strongly feasible trees so it
//! cannot cycle), as in LEMON's `NetworkSimplex`, re-written for this crate. Two additions
//! matter for the allocator:
//!
//! - **Warm restarts.** Arcs may be added after a solve (they enter at their lower bound, flow 0,
//!   so the current tree stays a feasible basis) and `solve` continues from where it stopped,
//!   looking at the new arcs first. The allocator uses this to add the arcs its pricing step
//!   finds without starting again.
//! - **A certificate.** After every solve the flow is checked against capacities and node
//!   balances, and the potentials against complementary slackness on every arc. Passing that
//!   check proves optimality whatever the pivoting did, so a bug can only cost time, not
//!   silently wrong answers.
//!
//! - **Derived potentials.** When the first nodes are pairwise non-adjacent (the allocator's
//!   zones: hundreds of thousands of them against a few thousand offices), their potentials
//!   are not stored: a tree arc has reduced cost 0, so a zone's potential follows from its
//!   parent's and its tree arc's cost. A pivot then shifts only the stored nodes of the
//!   re-hung subtree, and those are found along a thread that leaves out derived leaves
//!   (most zones: a zone has children only where its applicants split between offices).
//!   A leaf goes back on the thread when a pivot re-links it and off again when it loses
//!   its last child. On a saturated national instance the potential updates walked ~2,300
//!   nodes a pivot along the full thread (three fifths of the first solve) and walk ~30.
//!
//! Layout: node `u` owns artificial arc `u` (to or from the extra root node), real arcs follow.

use thiserror::Error;

mod warm_start;

/// Capacity meaning "no upper bound".
pub const CAPACITY_UNBOUNDED: i64 = i64::MAX;

const STATE_UPPER: i8 = -1;
const STATE_TREE: i8 = 0;
const STATE_LOWER: i8 = 1;
const DIR_UP: i8 = 1;
const DIR_DOWN: i8 = -1;
const NONE: usize = usize::MAX;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FlowError {
    #[error("the supplies do not sum to zero (sum {0})")]
    Unbalanced(i64),
    #[error("no feasible flow: {0} units could not be routed")]
    Infeasible(i64),
    #[error("an arc cost {cost} exceeds the declared bound {bound}")]
    CostOutOfBound { cost: i64, bound: i64 },
    #[error("the solver exceeded its pivot bound of {0}")]
    PivotLimit(u64),
    #[error("the optimality certificate failed: {0}")]
    Certificate(String),
    #[error("the network does not have the shape this solver is built for: {0}")]
    Shape(String),
}

/// The entering-arc search scans blocks of `BLOCK_FACTOR × √arcs` arcs. LEMON uses 1.0; on
/// the allocation networks (arcs sorted by zone, most of them never entering) 0.25 measured
/// fastest with block search: 10k applicants 96 → 84 ms, 100k 5.0 → 4.1 s, iran-national
/// 15.4 → 10.2 s (0.03, 0.1, 0.2, 0.3, 1 and 3 were tried); with the candidate list 0.1 and
/// 0.5 were no better (saturated instance, seed 7).
const BLOCK_FACTOR: f64 = 0.25;

/// Candidates kept from one look for the entering arc to the next, as a share of the block
/// (see [`NetworkSimplex::find_entering_arc`]). LEMON uses 0.01 (a handful); on the saturated
/// national instance (seed 1, 1M applicants) 0.01 / 0.1 / 0.3 / 1.0 took 282 / 235 / 217 /
/// 199 thousand pivots and 1.99 / 1.51 / 1.35 / 1.42 s of CPU in the fine solves: the
/// re-solves after pricing gain from a long list, the first solve (many arcs price in) pays
/// for re-checking it.
const HEAD_FACTOR: f64 = 0.3;

fn head_length(block: usize) -> usize {
    ((block as f64 * HEAD_FACTOR) as usize).max(3)
}

/// Min-cost flow on a directed graph with node supplies (positive = source) that sum to zero.
#[derive(Debug, Clone)]
pub struct NetworkSimplex {
    node_count: usize,
    supply: Vec<i64>,
    // Arc data (artificial arcs first).
    // u32 halves the bytes the entering-arc scan streams through (node ids fit: see `new`).
    source: Vec<u32>,
    target: Vec<u32>,
    cap: Vec<i64>,
    cost: Vec<i64>,
    flow: Vec<i64>,
    state: Vec<i8>,
    // Spanning tree, over node_count + 1 nodes (the root is the last).
    parent: Vec<usize>,
    pred: Vec<usize>,
    /// u32: the potential update walks it node by node, and half the bytes keep a
    /// national network's thread in a core's L2 cache.
    thread: Vec<u32>,
    rev_thread: Vec<usize>,
    succ_num: Vec<usize>,
    last_succ: Vec<usize>,
    pred_dir: Vec<i8>,
    /// `pred_dir[u] × cost[pred[u]]`, kept with them: a derived potential then reads the
    /// node's own entries (in scan order) rather than its tree arc's cost (anywhere).
    pred_cost: Vec<i64>,
    /// Potentials of the stored nodes (`derived..`); see [`Self::pi_at`] for the others.
    pi: Vec<i64>,
    /// Nodes `0..derived` are pairwise non-adjacent and have derived potentials.
    derived: usize,
    /// Whether a node is on the thread. Derived leaves are not (see [`Self::hide_leaf`]):
    /// the thread then holds the stored nodes and the few derived nodes between them.
    on_thread: Vec<bool>,
    dirty_revs: Vec<usize>,
    /// Arcs that priced in at the last look and were not entered yet (the candidate list,
    /// see [`Self::find_entering_arc`]): (signed reduced cost, arc).
    candidates: Vec<(i64, usize)>,
    /// The first arc added since the last solve, where the next one starts looking.
    first_new_arc: usize,
    /// Arcs looked at by the entering-arc search (a measure of its work).
    scanned: u64,
    initialised: bool,
    cost_bound: i64,
    art_cost: i64,
    next_arc: usize,
    pivots: u64,
    // Pivot scratch.
    in_arc: usize,
    join: usize,
    u_in: usize,
    v_in: usize,
    u_out: usize,
    delta: i64,
}

impl NetworkSimplex {
    /// A network with `supply.len()` nodes. `cost_bound` bounds |cost| of every arc that will
    /// ever be added (it sizes the artificial arcs' cost, which must dominate any real path).
    /// Node ids are kept in u32 (the allocator bounds its inputs far below that).
    pub fn new(supply: Vec<i64>, cost_bound: i64) -> Self {
        let n = supply.len();
        debug_assert!(n < u32::MAX as usize, "node ids must fit in u32");
        let mut s = Self {
            node_count: n,
            supply,
            source: Vec::new(),
            target: Vec::new(),
            cap: Vec::new(),
            cost: Vec::new(),
            flow: Vec::new(),
            state: Vec::new(),
            parent: vec![NONE; n + 1],
            pred: vec![NONE; n + 1],
            thread: vec![0; n + 1],
            rev_thread: vec![0; n + 1],
            succ_num: vec![0; n + 1],
            last_succ: vec![0; n + 1],
            pred_dir: vec![0; n + 1],
            pred_cost: vec![0; n + 1],
            pi: vec![0; n + 1],
            derived: 0,
            on_thread: vec![true; n + 1],
            dirty_revs: Vec::new(),
            candidates: Vec::new(),
            first_new_arc: NONE,
            scanned: 0,
            initialised: false,
            cost_bound: cost_bound.max(0),
            art_cost: 0,
            next_arc: n,
            pivots: 0,
            in_arc: 0,
            join: 0,
            u_in: 0,
            v_in: 0,
            u_out: 0,
            delta: 0,
        };
        // Artificial arcs: placeholders until `init` fixes their direction.
        for u in 0..n {
            s.push_arc(u, n, CAPACITY_UNBOUNDED, 0, STATE_TREE);
        }
        s
    }

    /// Declares nodes `0..count` pairwise non-adjacent (no arc will join two of them), so
    /// their potentials are derived rather than stored (see the module docs). Call before
    /// adding arcs.
    pub fn derive_potentials_of_first(&mut self, count: usize) {
        assert!(
            self.source.len() == self.node_count && count <= self.node_count,
            "declare derived nodes before adding arcs"
        );
        self.derived = count;
    }

    fn push_arc(&mut self, u: usize, v: usize, cap: i64, cost: i64, state: i8) -> usize {
        self.source.push(u as u32);
        self.target.push(v as u32);
        self.cap.push(cap);
        self.cost.push(cost);
        self.flow.push(0);
        self.state.push(state);
        self.source.len() - 1
    }

    /// Adds an arc `u -> v`; returns its id. Allowed before and after `solve` (warm restart).
    pub fn add_arc(&mut self, u: usize, v: usize, cap: i64, cost: i64) -> Result<usize, FlowError> {
        assert!(
            u < self.node_count && v < self.node_count,
            "arc endpoint out of range"
        );
        assert!(
            u >= self.derived || v >= self.derived,
            "an arc joins two nodes with derived potentials"
        );
        if cost.abs() > self.cost_bound {
            return Err(FlowError::CostOutOfBound {
                cost,
                bound: self.cost_bound,
            });
        }
        let e = self.push_arc(u, v, cap.max(0), cost, STATE_LOWER);
        if self.first_new_arc == NONE {
            self.first_new_arc = e;
        }
        Ok(e)
    }

    /// Room for `additional` more arcs without growing the arc arrays again (a national
    /// network has millions: growing by doubling copies and faults in each array twice).
    pub fn reserve_arcs(&mut self, additional: usize) {
        self.source.reserve(additional);
        self.target.reserve(additional);
        self.cap.reserve(additional);
        self.cost.reserve(additional);
        self.flow.reserve(additional);
        self.state.reserve(additional);
    }

    pub fn node_count(&self) -> usize {
        self.node_count
    }

    /// Real arcs added so far.
    pub fn arc_count(&self) -> usize {
        self.source.len() - self.node_count
    }

    /// Pivots performed over all solves.
    pub fn pivots(&self) -> u64 {
        self.pivots
    }

    /// Arcs the entering-arc search has looked at over all solves.
    pub fn arcs_scanned(&self) -> u64 {
        self.scanned
    }

    pub fn flow(&self, arc: usize) -> i64 {
        self.flow[arc]
    }

    /// Node potential: at optimum, `cost(u,v) + potential(u) - potential(v) >= 0` on every arc
    /// with spare capacity and `<= 0` on every arc with flow.
    pub fn potential(&self, node: usize) -> i64 {
        self.pi_at(node)
    }

    /// The potential of node `u`: stored, or (for a derived node) its parent's less the
    /// cost of its tree arc in the direction of flow (a tree arc's reduced cost is 0). A
    /// derived node's parent is always stored: derived nodes are never adjacent, and the
    /// root is stored.
    #[inline(always)]
    fn pi_at(&self, u: usize) -> i64 {
        if u < self.derived {
            self.pi[self.parent[u]] - self.pred_cost[u]
        } else {
            self.pi[u]
        }
    }

    /// Total cost of the current flow (real arcs only).
    pub fn total_cost(&self) -> i128 {
        (self.node_count..self.source.len())
            .map(|e| self.flow[e] as i128 * self.cost[e] as i128)
            .sum()
    }

    fn init(&mut self) -> Result<(), FlowError> {
        let n = self.node_count;
        let sum: i64 = self.supply.iter().sum();
        if sum != 0 {
            return Err(FlowError::Unbalanced(sum));
        }
        // The artificial cost must exceed the cost of any simple path of real arcs.
        self.art_cost = (self.cost_bound + 1).saturating_mul(n as i64 + 1);
        let root = n;
        self.parent[root] = NONE;
        self.pred[root] = NONE;
        self.succ_num[root] = n + 1;
        self.pi[root] = 0;
        for u in 0..n {
            let e = u;
            self.parent[u] = root;
            self.pred[u] = e;
            self.succ_num[u] = 1;
            self.cap[e] = CAPACITY_UNBOUNDED;
            self.state[e] = STATE_TREE;
            if self.supply[u] >= 0 {
                self.pred_dir[u] = DIR_UP;
                self.pi[u] = 0;
                self.source[e] = u as u32;
                self.target[e] = root as u32;
                self.flow[e] = self.supply[u];
                self.cost[e] = 0;
            } else {
                self.pred_dir[u] = DIR_DOWN;
                self.pi[u] = self.art_cost;
                self.source[e] = root as u32;
                self.target[e] = u as u32;
                self.flow[e] = -self.supply[u];
                self.cost[e] = self.art_cost;
            }
        }
        let preorder: Vec<usize> = std::iter::once(root).chain(0..n).collect();
        self.thread_preorder(&preorder);
        self.initialised = true;
        Ok(())
    }

    /// Threads the tree given its preorder (every node, root first) and subtree sizes,
    /// leaving derived leaves off the thread; sets `last_succ` of the nodes on it.
    fn thread_preorder(&mut self, preorder: &[usize]) {
        let root = self.node_count;
        // Per preorder position, the last node at or before it that is on the thread.
        let mut last_kept = Vec::with_capacity(preorder.len());
        let mut prev = NONE;
        for &u in preorder {
            if u != root {
                self.pred_cost[u] = self.pred_dir[u] as i64 * self.cost[self.pred[u]];
            }
            let keep = u >= self.derived || self.succ_num[u] > 1;
            self.on_thread[u] = keep;
            if keep {
                if prev != NONE {
                    self.thread[prev] = u as u32;
                    self.rev_thread[u] = prev;
                }
                prev = u;
            }
            last_kept.push(prev);
        }
        self.thread[prev] = root as u32;
        self.rev_thread[root] = prev;
        for (i, &u) in preorder.iter().enumerate() {
            self.last_succ[u] = if self.on_thread[u] {
                last_kept[i + self.succ_num[u] - 1]
            } else {
                u
            };
        }
        #[cfg(test)]
        self.check_tree();
    }

    /// Puts derived leaf `z` back on the thread, right after its parent (which is on it:
    /// only leaves are left off), before a pivot changes the tree around it.
    fn show_leaf(&mut self, z: usize) {
        if self.on_thread[z] {
            return;
        }
        let p = self.parent[z];
        let next = self.thread[p] as usize;
        self.thread[z] = next as u32;
        self.rev_thread[next] = z;
        self.thread[p] = z as u32;
        self.rev_thread[z] = p;
        self.last_succ[z] = z;
        // Where p's subtree ended at p itself, it now ends at z (and so do its ancestors').
        let mut a = p;
        while a != NONE && self.last_succ[a] == p {
            self.last_succ[a] = z;
            a = self.parent[a];
        }
        self.on_thread[z] = true;
    }

    /// Takes `z` off the thread if it is a derived leaf. The thread is walked node by node
    /// to shift potentials (`update_potential`), and derived leaves have nothing to shift:
    /// off the thread, the walks of a national network pass a few thousand stored and
    /// inner nodes instead of hundreds of thousands of zones.
    fn hide_leaf(&mut self, z: usize) {
        if z >= self.derived || !self.on_thread[z] || self.last_succ[z] != z {
            return;
        }
        let prev = self.rev_thread[z];
        let next = self.thread[z] as usize;
        self.thread[prev] = next as u32;
        self.rev_thread[next] = prev;
        let mut a = self.parent[z];
        while a != NONE && self.last_succ[a] == z {
            self.last_succ[a] = prev;
            a = self.parent[a];
        }
        self.on_thread[z] = false;
    }

    /// Runs (or continues) the simplex until optimal; `max_pivots` bounds the work of this call.
    pub fn solve(&mut self, max_pivots: u64) -> Result<(), FlowError> {
        if !self.initialised {
            self.init()?;
        }
        let search_start = self.node_count;
        let search_end = self.source.len();
        let search_len = search_end - search_start;
        if search_len > 0 {
            let block = (((search_len as f64).sqrt() * BLOCK_FACTOR) as usize).max(10);
            let head = head_length(block);
            // Arcs added since the last solve (the allocator's pricing adds only arcs that
            // price in) are looked at first.
            if self.first_new_arc != NONE {
                self.next_arc = self.first_new_arc;
            }
            self.first_new_arc = NONE;
            if self.next_arc < search_start || self.next_arc >= search_end {
                self.next_arc = search_start;
            }
            let mut done: u64 = 0;
            while self.find_entering_arc(search_start, search_end, block, head) {
                if done >= max_pivots {
                    return Err(FlowError::PivotLimit(max_pivots));
                }
                done += 1;
                self.find_join_node();
                let change = self.find_leaving_arc();
                if self.delta == CAPACITY_UNBOUNDED {
                    // Every arc cost is bounded and artificial arcs dominate, so an unbounded
                    // cycle means a negative-cost cycle of uncapacitated arcs.
                    return Err(FlowError::Certificate(
                        "negative cycle of unbounded capacity".into(),
                    ));
                }
                self.change_flow(change);
                if change {
                    // The shift of the re-hung subtree, from the potentials before the tree
                    // changes (a derived node's would already follow its new parent).
                    let dir_in = if self.u_in == self.source[self.in_arc] as usize {
                        DIR_UP
                    } else {
                        DIR_DOWN
                    };
                    let sigma = self.pi_at(self.v_in)
                        - self.pi_at(self.u_in)
                        - dir_in as i64 * self.cost[self.in_arc];
                    // The pivot re-links the entering arc's ends; every other node it
                    // touches has a child, so is on the thread already.
                    self.show_leaf(self.u_in);
                    self.show_leaf(self.v_in);
                    let (u_out, v_out) = (self.u_out, self.parent[self.u_out]);
                    self.update_tree_structure();
                    self.update_potential(sigma);
                    // The only nodes that can have lost their last child.
                    self.hide_leaf(u_out);
                    self.hide_leaf(v_out);
                    #[cfg(test)]
                    self.check_tree();
                }
            }
            self.pivots += done;
        }
        // Supply still parked on an artificial arc could not be routed on real arcs.
        let unrouted: i64 = (0..self.node_count)
            .filter(|&e| self.source[e] as usize != self.node_count)
            .map(|e| self.flow[e])
            .sum();
        if unrouted != 0 {
            return Err(FlowError::Infeasible(unrouted));
        }
        self.check_certificate()
    }

    #[inline]
    fn reduced_cost(&self, e: usize) -> i64 {
        self.cost[e] + self.pi_at(self.source[e] as usize) - self.pi_at(self.target[e] as usize)
    }

    /// Altering candidate list (LEMON's `AlteringListPivotRule`, on the block search's
    /// blocks): the arcs that priced in at the last look are checked again first (their
    /// reduced cost may have changed with the pivot), then blocks are scanned from where the
    /// last look stopped, collecting every arc that prices in, until a block ends with more
    /// than `head` candidates (or, after the first block, any). The most negative enters;
    /// the next best `head` are kept for the next look. Late in a solve few arcs price in
    /// and those come in clusters (arcs are grouped by zone, zones by nearest office): block
    /// search entered one per block and scanned past the rest until its next wrap-around.
    fn find_entering_arc(&mut self, start: usize, end: usize, block: usize, head: usize) -> bool {
        let mut list = std::mem::take(&mut self.candidates);
        list.retain_mut(|(c, e)| {
            *c = self.state[*e] as i64 * self.reduced_cost(*e);
            *c < 0
        });
        let mut e = self.next_arc;
        let total = end - start;
        // Arcs come grouped by source (the allocator adds each zone's together): its
        // potential is derived once per run of arcs.
        let mut last_source = u32::MAX;
        let mut source_pi = 0i64;
        let mut scanned = 0usize;
        let mut block_left = block;
        let mut limit = head;
        // Runs of arcs that neither wrap nor cross a block end, scanned over zipped slices
        // (no per-arc bounds, wrap or block checks: the scan is most of a late pivot).
        while scanned < total {
            let run = block_left.min(end - e).min(total - scanned);
            let arcs = self.source[e..e + run]
                .iter()
                .zip(&self.target[e..e + run])
                .zip(&self.cost[e..e + run])
                .zip(&self.state[e..e + run]);
            for (i, (((&source, &target), &cost), &state)) in arcs.enumerate() {
                if source != last_source {
                    last_source = source;
                    source_pi = self.pi_at(source as usize);
                }
                let c = state as i64 * (cost + source_pi - self.pi_at(target as usize));
                if c < 0 {
                    list.push((c, e + i));
                }
            }
            scanned += run;
            e += run;
            if e == end {
                e = start;
            }
            block_left -= run;
            if block_left == 0 {
                if list.len() > limit {
                    break;
                }
                limit = 0;
                block_left = block;
            }
        }
        self.scanned += scanned as u64;
        self.next_arc = e;
        if list.is_empty() {
            self.candidates = list;
            return false;
        }
        // The best first, then the next `head` (in any order); the rest are dropped.
        let keep = (head + 1).min(list.len());
        if keep < list.len() {
            list.select_nth_unstable(keep - 1);
            list.truncate(keep);
        }
        let best = (0..list.len()).min_by_key(|&i| list[i]).expect("not empty");
        self.in_arc = list.swap_remove(best).1;
        self.candidates = list;
        true
    }

    fn find_join_node(&mut self) {
        let mut u = self.source[self.in_arc] as usize;
        let mut v = self.target[self.in_arc] as usize;
        while u != v {
            if self.succ_num[u] < self.succ_num[v] {
                u = self.parent[u];
            } else {
                v = self.parent[v];
            }
        }
        self.join = u;
    }

    fn find_leaving_arc(&mut self) -> bool {
        let in_arc = self.in_arc;
        let (first, second) = if self.state[in_arc] == STATE_LOWER {
            (self.source[in_arc] as usize, self.target[in_arc] as usize)
        } else {
            (self.target[in_arc] as usize, self.source[in_arc] as usize)
        };
        self.delta = self.cap[in_arc];
        let mut result = 0;
        let mut u = first;
        while u != self.join {
            let e = self.pred[u];
            let d = if self.pred_dir[u] == DIR_DOWN {
                residual(self.cap[e], self.flow[e])
            } else {
                self.flow[e]
            };
            if d < self.delta {
                self.delta = d;
                self.u_out = u;
                result = 1;
            }
            u = self.parent[u];
        }
        let mut u = second;
        while u != self.join {
            let e = self.pred[u];
            let d = if self.pred_dir[u] == DIR_UP {
                residual(self.cap[e], self.flow[e])
            } else {
                self.flow[e]
            };
            if d <= self.delta {
                self.delta = d;
                self.u_out = u;
                result = 2;
            }
            u = self.parent[u];
        }
        if result == 1 {
            self.u_in = first;
            self.v_in = second;
        } else {
            self.u_in = second;
            self.v_in = first;
        }
        result != 0
    }

    fn change_flow(&mut self, change: bool) {
        let in_arc = self.in_arc;
        if self.delta > 0 {
            let val = self.state[in_arc] as i64 * self.delta;
            self.flow[in_arc] += val;
            let mut u = self.source[in_arc] as usize;
            while u != self.join {
                let e = self.pred[u];
                self.flow[e] -= self.pred_dir[u] as i64 * val;
                u = self.parent[u];
            }
            let mut u = self.target[in_arc] as usize;
            while u != self.join {
                let e = self.pred[u];
                self.flow[e] += self.pred_dir[u] as i64 * val;
                u = self.parent[u];
            }
        }
        if change {
            self.state[in_arc] = STATE_TREE;
            let out = self.pred[self.u_out];
            self.state[out] = if self.flow[out] == 0 {
                STATE_LOWER
            } else {
                STATE_UPPER
            };
        } else {
            self.state[in_arc] = -self.state[in_arc];
        }
    }

    fn update_tree_structure(&mut self) {
        let u_in = self.u_in;
        let v_in = self.v_in;
        let u_out = self.u_out;
        let in_arc = self.in_arc;
        let join = self.join;
        let old_rev_thread = self.rev_thread[u_out];
        let old_succ_num = self.succ_num[u_out];
        let old_last_succ = self.last_succ[u_out];
        let v_out = self.parent[u_out];

        if u_in == u_out {
            self.parent[u_in] = v_in;
            self.pred[u_in] = in_arc;
            self.pred_dir[u_in] = if u_in == self.source[in_arc] as usize {
                DIR_UP
            } else {
                DIR_DOWN
            };
            self.pred_cost[u_in] = self.pred_dir[u_in] as i64 * self.cost[in_arc];
            if self.thread[v_in] as usize != u_out {
                let mut after = self.thread[old_last_succ] as usize;
                self.thread[old_rev_thread] = after as u32;
                self.rev_thread[after] = old_rev_thread;
                after = self.thread[v_in] as usize;
                self.thread[v_in] = u_out as u32;
                self.rev_thread[u_out] = v_in;
                self.thread[old_last_succ] = after as u32;
                self.rev_thread[after] = old_last_succ;
            }
        } else {
            let thread_continue = if old_rev_thread == v_in {
                self.thread[old_last_succ] as usize
            } else {
                self.thread[v_in] as usize
            };
            let mut stem = u_in;
            let mut par_stem = v_in;
            let mut last = self.last_succ[u_in];
            let mut after = self.thread[last] as usize;
            self.thread[v_in] = u_in as u32;
            self.dirty_revs.clear();
            self.dirty_revs.push(v_in);
            while stem != u_out {
                let next_stem = self.parent[stem];
                self.thread[last] = next_stem as u32;
                self.dirty_revs.push(last);
                let before = self.rev_thread[stem];
                self.thread[before] = after as u32;
                self.rev_thread[after] = before;
                self.parent[stem] = par_stem;
                par_stem = stem;
                stem = next_stem;
                last = if self.last_succ[stem] == self.last_succ[par_stem] {
                    self.rev_thread[par_stem]
                } else {
                    self.last_succ[stem]
                };
                after = self.thread[last] as usize;
            }
            self.parent[u_out] = par_stem;
            self.thread[last] = thread_continue as u32;
            self.rev_thread[thread_continue] = last;
            self.last_succ[u_out] = last;
            if old_rev_thread != v_in {
                self.thread[old_rev_thread] = after as u32;
                self.rev_thread[after] = old_rev_thread;
            }
            for i in 0..self.dirty_revs.len() {
                let u = self.dirty_revs[i];
                let t = self.thread[u] as usize;
                self.rev_thread[t] = u;
            }
            let mut tmp_sc: isize = 0;
            let tmp_ls = self.last_succ[u_out];
            let mut u = u_out;
            while u != u_in {
                let p = self.parent[u];
                self.pred[u] = self.pred[p];
                self.pred_dir[u] = -self.pred_dir[p];
                self.pred_cost[u] = -self.pred_cost[p];
                tmp_sc += self.succ_num[u] as isize - self.succ_num[p] as isize;
                self.succ_num[u] = tmp_sc as usize;
                self.last_succ[p] = tmp_ls;
                u = p;
            }
            self.pred[u_in] = in_arc;
            self.pred_dir[u_in] = if u_in == self.source[in_arc] as usize {
                DIR_UP
            } else {
                DIR_DOWN
            };
            self.pred_cost[u_in] = self.pred_dir[u_in] as i64 * self.cost[in_arc];
            self.succ_num[u_in] = old_succ_num;
        }

        let up_limit_out = if self.last_succ[join] == v_in {
            join
        } else {
            NONE
        };
        let last_succ_out = self.last_succ[u_out];
        let mut u = v_in;
        while u != NONE && self.last_succ[u] == v_in {
            self.last_succ[u] = last_succ_out;
            u = self.parent[u];
        }
        if join != old_rev_thread && v_in != old_rev_thread {
            let mut u = v_out;
            while u != up_limit_out && self.last_succ[u] == old_last_succ {
                self.last_succ[u] = old_rev_thread;
                u = self.parent[u];
            }
        } else if last_succ_out != old_last_succ {
            let mut u = v_out;
            while u != up_limit_out && self.last_succ[u] == old_last_succ {
                self.last_succ[u] = last_succ_out;
                u = self.parent[u];
            }
        }
        let mut u = v_in;
        while u != join {
            self.succ_num[u] += old_succ_num;
            u = self.parent[u];
        }
        let mut u = v_out;
        while u != join {
            self.succ_num[u] -= old_succ_num;
            u = self.parent[u];
        }
    }

    /// Shifts the stored potentials of the re-hung subtree (rooted at `u_in`) by `sigma`.
    fn update_potential(&mut self, sigma: i64) {
        if sigma == 0 {
            return;
        }
        let u_in = self.u_in;
        let end = self.thread[self.last_succ[u_in]] as usize;
        let inside = self.succ_num[u_in];
        let outside = self.node_count + 1 - inside;
        // Potentials matter only up to a constant, so either side may move: the smaller
        // (by nodes; its thread is shorter, derived leaves being off it). The thread is one
        // cycle through its nodes, the subtree a contiguous run of it.
        if inside <= outside {
            let mut u = u_in;
            while u != end {
                if u >= self.derived {
                    self.pi[u] += sigma;
                }
                u = self.thread[u] as usize;
            }
        } else {
            let mut u = end;
            while u != u_in {
                if u >= self.derived {
                    self.pi[u] -= sigma;
                }
                u = self.thread[u] as usize;
            }
        }
    }

    /// Test-only: the tree's links agree. Subtree sizes count every node; the thread is one
    /// cycle from the root through exactly the nodes on it, each subtree's nodes on it a
    /// contiguous run from the subtree's root to its `last_succ`; only derived leaves are
    /// off it.
    #[cfg(test)]
    fn check_tree(&self) {
        let n = self.node_count;
        if n > 64 {
            return; // quadratic: the small random networks of the tests only
        }
        let root = n;
        let is_below = |mut v: usize, u: usize| loop {
            if v == u {
                return true;
            }
            if v == root {
                return false;
            }
            v = self.parent[v];
        };
        for u in 0..=n {
            let below = (0..=n).filter(|&v| is_below(v, u)).count();
            assert_eq!(self.succ_num[u], below, "subtree size of {u}");
            if !self.on_thread[u] {
                assert!(u < self.derived && below == 1, "{u} is off the thread");
            }
            if u != root {
                let cost = self.pred_dir[u] as i64 * self.cost[self.pred[u]];
                assert_eq!(self.pred_cost[u], cost, "tree arc cost of {u}");
            }
        }
        let mut order = vec![root];
        let mut u = self.thread[root] as usize;
        while u != root {
            assert!(
                order.len() <= n,
                "the thread is not a cycle through the root"
            );
            assert_eq!(self.rev_thread[u], *order.last().expect("root"));
            order.push(u);
            u = self.thread[u] as usize;
        }
        assert_eq!(self.rev_thread[root], *order.last().expect("root"));
        let on: Vec<usize> = (0..=n).filter(|&u| self.on_thread[u]).collect();
        assert_eq!(order.len(), on.len(), "the thread holds the nodes on it");
        for (i, &u) in order.iter().enumerate() {
            let run = order[i..].iter().take_while(|&&v| is_below(v, u)).count();
            let on_below = on.iter().filter(|&&v| is_below(v, u)).count();
            assert_eq!(
                run, on_below,
                "subtree of {u} is not contiguous on the thread"
            );
            assert_eq!(self.last_succ[u], order[i + run - 1], "last_succ of {u}");
        }
    }

    /// Checks feasibility and complementary slackness on every real arc. Artificial arcs carry
    /// no flow by then (checked by the caller), so they are not part of the problem solved.
    fn check_certificate(&self) -> Result<(), FlowError> {
        let mut balance = vec![0i64; self.node_count + 1];
        for e in self.node_count..self.source.len() {
            let f = self.flow[e];
            if f < 0 || f > self.cap[e] {
                return Err(FlowError::Certificate(format!(
                    "arc {e} flow {f} out of bounds"
                )));
            }
            let rc = self.reduced_cost(e);
            if f < self.cap[e] && rc < 0 {
                return Err(FlowError::Certificate(format!(
                    "arc {e} has spare capacity and reduced cost {rc}"
                )));
            }
            if f > 0 && rc > 0 {
                return Err(FlowError::Certificate(format!(
                    "arc {e} has flow and reduced cost {rc}"
                )));
            }
            balance[self.source[e] as usize] += f;
            balance[self.target[e] as usize] -= f;
        }
        for (u, (&b, &s)) in balance.iter().zip(&self.supply).enumerate() {
            if b != s {
                return Err(FlowError::Certificate(format!(
                    "node {u} is out of balance"
                )));
            }
        }
        Ok(())
    }
}

#[inline]
fn residual(cap: i64, flow: i64) -> i64 {
    if cap == CAPACITY_UNBOUNDED {
        CAPACITY_UNBOUNDED
    } else {
        cap - flow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_transportation_problem_is_optimal() {
        // Two sources (3 and 2 units), two sinks (-4, -1).
        let mut ns = NetworkSimplex::new(vec![3, 2, -4, -1], 10);
        let a = ns.add_arc(0, 2, 10, 1).unwrap();
        let b = ns.add_arc(0, 3, 10, 4).unwrap();
        let c = ns.add_arc(1, 2, 1, 2).unwrap();
        let d = ns.add_arc(1, 3, 10, 3).unwrap();
        ns.solve(1000).unwrap();
        // Best: 0->2 three units (3), 1->2 one unit (2), 1->3 one unit (3) = 8.
        assert_eq!(ns.total_cost(), 8);
        assert_eq!(
            (ns.flow(a), ns.flow(b), ns.flow(c), ns.flow(d)),
            (3, 0, 1, 1)
        );
    }

    #[test]
    fn infeasible_is_reported() {
        let mut ns = NetworkSimplex::new(vec![2, -2], 5);
        ns.add_arc(0, 1, 1, 1).unwrap();
        assert_eq!(ns.solve(100), Err(FlowError::Infeasible(1)));
    }

    #[test]
    fn warm_restart_uses_a_new_cheaper_arc() {
        let mut ns = NetworkSimplex::new(vec![5, 0, -5], 100);
        ns.add_arc(0, 2, CAPACITY_UNBOUNDED, 50).unwrap();
        ns.solve(100).unwrap();
        assert_eq!(ns.total_cost(), 250);
        ns.add_arc(0, 1, 3, 1).unwrap();
        ns.add_arc(1, 2, CAPACITY_UNBOUNDED, 1).unwrap();
        ns.solve(100).unwrap();
        assert_eq!(ns.total_cost(), 3 * 2 + 2 * 50);
    }

    /// Random problems against a brute-force Bellman-Ford cycle-cancelling reference.
    #[test]
    fn random_problems_match_cycle_cancelling() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..300 {
            let n = rng.gen_range(2..9);
            let mut supply = vec![0i64; n];
            for _ in 0..rng.gen_range(1..6) {
                let (a, b) = (rng.gen_range(0..n), rng.gen_range(0..n));
                let q = rng.gen_range(1..5);
                supply[a] += q;
                supply[b] -= q;
            }
            let mut arcs = Vec::new();
            for _ in 0..rng.gen_range(1..20) {
                let (a, b) = (rng.gen_range(0..n), rng.gen_range(0..n));
                if a != b {
                    arcs.push((a, b, rng.gen_range(0..6), rng.gen_range(-5..20)));
                }
            }
            // Always feasible: an expensive complete backbone.
            for a in 0..n {
                for b in 0..n {
                    if a != b {
                        arcs.push((a, b, CAPACITY_UNBOUNDED, 100));
                    }
                }
            }
            let mut ns = NetworkSimplex::new(supply.clone(), 100);
            for &(a, b, c, w) in &arcs {
                ns.add_arc(a, b, c, w).unwrap();
            }
            match ns.solve(1_000_000) {
                Ok(()) => {
                    let reference = cycle_cancelling(n, &supply, &arcs);
                    assert_eq!(ns.total_cost(), reference as i128);
                }
                Err(FlowError::Certificate(msg)) if msg.contains("negative cycle") => {}
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Transportation problems (sources never adjacent) with derived source potentials give
    /// the same optimum as with every potential stored, through warm restarts too.
    #[test]
    fn derived_potentials_match_stored_ones() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for _ in 0..300 {
            let sources = rng.gen_range(1..40);
            let middles = rng.gen_range(1..6);
            // sources, middles, unplaced, sink
            let n = sources + middles + 2;
            let (unplaced, sink) = (sources + middles, sources + middles + 1);
            let mut supply = vec![0i64; n];
            for s in supply.iter_mut().take(sources) {
                *s = rng.gen_range(1..4);
            }
            supply[sink] = -supply.iter().sum::<i64>();
            let mut arcs = Vec::new();
            for s in 0..sources {
                for m in 0..middles {
                    if rng.gen_bool(0.5) {
                        arcs.push((s, sources + m, CAPACITY_UNBOUNDED, rng.gen_range(0..50)));
                    }
                }
                arcs.push((s, unplaced, CAPACITY_UNBOUNDED, 1_000));
            }
            for m in 0..middles {
                arcs.push((sources + m, sink, rng.gen_range(0..8), rng.gen_range(0..10)));
            }
            arcs.push((unplaced, sink, CAPACITY_UNBOUNDED, 0));
            let split = rng.gen_range(0..arcs.len());
            let mut costs = Vec::new();
            for derived in [0, sources] {
                let mut ns = NetworkSimplex::new(supply.clone(), 1_000);
                ns.derive_potentials_of_first(derived);
                for &(a, b, c, w) in &arcs[..split] {
                    ns.add_arc(a, b, c, w).unwrap();
                }
                // Sources without arcs yet are unbalanced: give each a way out first.
                for s in 0..sources {
                    ns.add_arc(s, unplaced, CAPACITY_UNBOUNDED, 1_000).unwrap();
                }
                ns.add_arc(unplaced, sink, CAPACITY_UNBOUNDED, 0).unwrap();
                ns.solve(1_000_000).unwrap();
                for &(a, b, c, w) in &arcs[split..] {
                    ns.add_arc(a, b, c, w).unwrap();
                }
                ns.solve(1_000_000).unwrap();
                costs.push(ns.total_cost());
            }
            assert_eq!(costs[0], costs[1]);
        }
    }

    /// Starting from any feasible flow (here: supply routed greedily over arcs, which
    /// leaves cycles of free arcs to cancel) gives the cold start's optimum, with zone
    /// potentials derived or stored, through a warm restart too.
    #[test]
    fn start_from_a_feasible_flow_matches_the_cold_optimum() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(23);
        let mut warm_starts = 0;
        for _ in 0..300 {
            let sources = rng.gen_range(1..30);
            let middles = rng.gen_range(1..6);
            let n = sources + middles + 2;
            let (unplaced, sink) = (sources + middles, sources + middles + 1);
            let mut supply = vec![0i64; n];
            for s in supply.iter_mut().take(sources) {
                *s = rng.gen_range(1..6);
            }
            supply[sink] = -supply.iter().sum::<i64>();
            let mut arcs = Vec::new();
            for s in 0..sources {
                for m in 0..middles {
                    if rng.gen_bool(0.6) {
                        arcs.push((s, sources + m, CAPACITY_UNBOUNDED, rng.gen_range(0..50)));
                    }
                }
                arcs.push((s, unplaced, CAPACITY_UNBOUNDED, 1_000));
            }
            for m in 0..middles {
                arcs.push((sources + m, sink, rng.gen_range(0..8), rng.gen_range(0..10)));
                arcs.push((
                    sources + m,
                    sink,
                    rng.gen_range(0..8),
                    rng.gen_range(10..20),
                ));
            }
            arcs.push((unplaced, sink, CAPACITY_UNBOUNDED, 0));
            // A feasible flow: each source fills its middles in arc order while they have
            // room on their day arcs, the rest goes unplaced.
            let mut flow = vec![0i64; arcs.len()];
            let mut room = vec![0i64; n];
            for a in arcs.iter().filter(|a| a.1 == sink && a.0 != unplaced) {
                room[a.0] += a.2;
            }
            let mut into = vec![0i64; n];
            for (s, &source_supply) in supply.iter().enumerate().take(sources) {
                let mut left = source_supply;
                for (i, a) in arcs.iter().enumerate() {
                    if a.0 == s && left > 0 {
                        let take = if a.1 == unplaced {
                            left
                        } else {
                            left.min(room[a.1] - into[a.1])
                        };
                        flow[i] += take;
                        into[a.1] += take;
                        left -= take;
                    }
                }
            }
            for (i, a) in arcs.iter().enumerate() {
                if a.1 == sink {
                    let take = into[a.0].min(a.2);
                    flow[i] = take;
                    into[a.0] -= take;
                }
            }
            let mut cold = NetworkSimplex::new(supply.clone(), 1_000);
            for &(a, b, c, w) in &arcs {
                cold.add_arc(a, b, c, w).unwrap();
            }
            cold.solve(1_000_000).unwrap();
            for derived in [0, sources] {
                let mut ns = NetworkSimplex::new(supply.clone(), 1_000);
                ns.derive_potentials_of_first(derived);
                for &(a, b, c, w) in &arcs {
                    ns.add_arc(a, b, c, w).unwrap();
                }
                assert!(ns.start_from_flow(&flow), "a feasible flow is accepted");
                warm_starts += 1;
                ns.solve(1_000_000).unwrap();
                assert_eq!(ns.total_cost(), cold.total_cost());
                // A cheap arc added afterwards: the warm restart still reaches the optimum.
                let extra = (
                    0,
                    sources + rng.gen_range(0..middles),
                    CAPACITY_UNBOUNDED,
                    0,
                );
                ns.add_arc(extra.0, extra.1, extra.2, extra.3).unwrap();
                ns.solve(1_000_000).unwrap();
                let mut reference = NetworkSimplex::new(supply.clone(), 1_000);
                for &(a, b, c, w) in arcs.iter().chain(std::iter::once(&extra)) {
                    reference.add_arc(a, b, c, w).unwrap();
                }
                reference.solve(1_000_000).unwrap();
                assert_eq!(ns.total_cost(), reference.total_cost());
            }
        }
        assert_eq!(warm_starts, 600);
    }

    /// A flow that breaks a balance or a bound is declined and the solve starts cold.
    #[test]
    fn an_infeasible_starting_flow_is_declined() {
        let mut ns = NetworkSimplex::new(vec![3, 0, -3], 10);
        ns.add_arc(0, 1, CAPACITY_UNBOUNDED, 1).unwrap();
        ns.add_arc(1, 2, 2, 1).unwrap();
        ns.add_arc(0, 2, CAPACITY_UNBOUNDED, 5).unwrap();
        assert!(!ns.start_from_flow(&[3, 3, 0]), "over capacity");
        assert!(!ns.start_from_flow(&[2, 2, 0]), "unbalanced");
        assert!(!ns.start_from_flow(&[2, 2]), "wrong length");
        ns.solve(100).unwrap();
        assert_eq!(ns.total_cost(), 2 * 2 + 5);
        assert!(!ns.start_from_flow(&[2, 2, 1]), "already solved");
    }

    fn cycle_cancelling(n: usize, supply: &[i64], arcs: &[(usize, usize, i64, i64)]) -> i64 {
        // Route supply along the backbone first (feasible), then cancel negative cycles.
        let mut flow = vec![0i64; arcs.len()];
        let mut bal = supply.to_vec();
        for (i, &(a, b, _, _)) in arcs.iter().enumerate() {
            if arcs[i].2 == CAPACITY_UNBOUNDED && bal[a] > 0 && bal[b] < 0 {
                let q = bal[a].min(-bal[b]);
                flow[i] += q;
                bal[a] -= q;
                bal[b] += q;
            }
        }
        assert!(bal.iter().all(|&x| x == 0));
        loop {
            // Residual edges: (from, to, cost, arc index, forward?)
            let mut edges = Vec::new();
            for (i, &(a, b, c, w)) in arcs.iter().enumerate() {
                if flow[i] < c {
                    edges.push((a, b, w, i, true));
                }
                if flow[i] > 0 {
                    edges.push((b, a, -w, i, false));
                }
            }
            let mut dist = vec![0i64; n];
            let mut pre = vec![usize::MAX; n];
            let mut last = usize::MAX;
            for _ in 0..n {
                last = usize::MAX;
                for (k, &(a, b, w, _, _)) in edges.iter().enumerate() {
                    if dist[a] + w < dist[b] {
                        dist[b] = dist[a] + w;
                        pre[b] = k;
                        last = b;
                    }
                }
            }
            if last == usize::MAX {
                break;
            }
            let mut x = last;
            for _ in 0..n {
                x = edges[pre[x]].0;
            }
            let mut cycle = Vec::new();
            let mut y = x;
            loop {
                let k = pre[y];
                cycle.push(k);
                y = edges[k].0;
                if y == x {
                    break;
                }
            }
            let q = cycle
                .iter()
                .map(|&k| {
                    let (_, _, _, i, fwd) = edges[k];
                    if fwd {
                        if arcs[i].2 == CAPACITY_UNBOUNDED {
                            i64::MAX
                        } else {
                            arcs[i].2 - flow[i]
                        }
                    } else {
                        flow[i]
                    }
                })
                .min()
                .unwrap();
            if q == i64::MAX {
                return i64::MIN;
            }
            for &k in &cycle {
                let (_, _, _, i, fwd) = edges[k];
                if fwd {
                    flow[i] += q;
                } else {
                    flow[i] -= q;
                }
            }
        }
        arcs.iter().zip(&flow).map(|(a, f)| a.3 * f).sum()
    }
}
