//! Warm start: the simplex begins from a caller's feasible flow instead of the artificial
//! basis.
//!
//! From the artificial basis every source node must be re-hung onto real arcs one pivot at a
//! time, and on a saturated national instance (hundreds of thousands of zones) that first
//! solve took two million pivots. The allocator knows a good flow before the first pivot: its
//! coarse copy's optimum, spread over the fine zones. This module turns such a flow into a
//! strongly feasible spanning-tree basis:
//!
//! 1. **Basic flow.** Arcs strictly between their bounds (free arcs) must form a forest. A
//!    cycle of free arcs is cancelled by pushing flow round it (in the direction that does
//!    not raise the cost) until one of its arcs reaches a bound; the flow stays feasible.
//! 2. **Tree.** Each component of the free arcs hangs from the root by its node's artificial
//!    arc `u → root` (cost 0, flow 0: pointing up, so the tree is strongly feasible). The
//!    component's node with the least potential is chosen, so no other node's artificial arc
//!    (`u → root`, cost 0) has a negative reduced cost and enters at once.
//!
//! The flow is checked (bounds, balances) first; on any doubt the call declines and the
//! simplex starts cold as before. Optimality is proved at the end of `solve` either way.

use super::{NetworkSimplex, CAPACITY_UNBOUNDED, DIR_DOWN, DIR_UP, NONE, STATE_LOWER};
use super::{STATE_TREE, STATE_UPPER};

/// What the forest of free arcs looks like from one BFS: parent arc and depth per node.
struct FreeForest {
    parent_arc: Vec<usize>,
    depth: Vec<u32>,
    /// Free arcs that close a cycle with the BFS tree.
    closers: Vec<usize>,
}

impl NetworkSimplex {
    /// Installs `flow` (one value per real arc, in arc order) as the starting basis. Returns
    /// false, changing nothing, when the network has been solved already or the flow breaks
    /// a bound or a node balance; the next `solve` then starts from the artificial basis.
    pub fn start_from_flow(&mut self, flow: &[i64]) -> bool {
        let n = self.node_count;
        if self.initialised
            || flow.len() != self.arc_count()
            || self.supply.iter().sum::<i64>() != 0
        {
            return false;
        }
        let mut balance = vec![0i64; n];
        for (i, &f) in flow.iter().enumerate() {
            let e = n + i;
            if f < 0 || f > self.cap[e] {
                return false;
            }
            balance[self.source[e] as usize] += f;
            balance[self.target[e] as usize] -= f;
        }
        if balance != self.supply {
            return false;
        }
        self.flow[n..].copy_from_slice(flow);
        let Some(forest) = self.cancel_free_cycles() else {
            self.flow[n..].iter_mut().for_each(|f| *f = 0);
            return false;
        };
        self.art_cost = (self.cost_bound + 1).saturating_mul(n as i64 + 1);
        self.install_tree(forest);
        self.initialised = true;
        true
    }

    fn is_free(&self, e: usize) -> bool {
        self.flow[e] > 0 && self.flow[e] < self.cap[e]
    }

    /// Pushes flow round cycles of free arcs until the free arcs form a forest, and returns
    /// that forest; `None` if a cycle has no bound (cannot happen on the allocator's
    /// networks, which have no directed cycle of unbounded arcs).
    fn cancel_free_cycles(&mut self) -> Option<FreeForest> {
        loop {
            let forest = self.free_forest();
            if forest.closers.is_empty() {
                return Some(forest);
            }
            let mut cycle: Vec<(usize, i64)> = Vec::new();
            for &e in &forest.closers {
                if !self.fundamental_cycle(&forest, e, &mut cycle) {
                    continue; // an earlier push of this sweep moved one of its arcs to a bound
                }
                let cost: i64 = cycle.iter().map(|&(a, s)| s * self.cost[a]).sum();
                let sign = if cost > 0 { -1 } else { 1 };
                let amount = cycle
                    .iter()
                    .map(|&(a, s)| {
                        if s * sign > 0 {
                            if self.cap[a] == CAPACITY_UNBOUNDED {
                                i64::MAX
                            } else {
                                self.cap[a] - self.flow[a]
                            }
                        } else {
                            self.flow[a]
                        }
                    })
                    .min()
                    .unwrap_or(0);
                if amount == i64::MAX {
                    return None;
                }
                for &(a, s) in &cycle {
                    self.flow[a] += s * sign * amount;
                }
            }
        }
    }

    /// A BFS forest over the free real arcs.
    fn free_forest(&self) -> FreeForest {
        let n = self.node_count;
        let mut start = vec![0usize; n + 1];
        for e in n..self.source.len() {
            if self.is_free(e) {
                start[self.source[e] as usize + 1] += 1;
                start[self.target[e] as usize + 1] += 1;
            }
        }
        for u in 0..n {
            start[u + 1] += start[u];
        }
        let mut fill = start.clone();
        let mut adjacent = vec![0usize; start[n]];
        for e in n..self.source.len() {
            if self.is_free(e) {
                for end in [self.source[e] as usize, self.target[e] as usize] {
                    adjacent[fill[end]] = e;
                    fill[end] += 1;
                }
            }
        }
        let mut parent_arc = vec![NONE; n];
        let mut depth = vec![u32::MAX; n];
        let mut used = vec![false; self.source.len()];
        let mut queue = std::collections::VecDeque::new();
        for s in 0..n {
            if depth[s] != u32::MAX {
                continue;
            }
            depth[s] = 0;
            queue.push_back(s);
            while let Some(u) = queue.pop_front() {
                for &e in &adjacent[start[u]..start[u + 1]] {
                    let v = (self.source[e] ^ self.target[e]) as usize ^ u;
                    if depth[v] == u32::MAX {
                        depth[v] = depth[u] + 1;
                        parent_arc[v] = e;
                        used[e] = true;
                        queue.push_back(v);
                    }
                }
            }
        }
        let closers = (n..self.source.len())
            .filter(|&e| self.is_free(e) && !used[e])
            .collect();
        FreeForest {
            parent_arc,
            depth,
            closers,
        }
    }

    /// The cycle closed by free arc `e` through the forest, as (arc, +1 forward / −1
    /// backward) in the direction of `e`; false when one of its arcs is no longer free.
    fn fundamental_cycle(
        &self,
        forest: &FreeForest,
        e: usize,
        cycle: &mut Vec<(usize, i64)>,
    ) -> bool {
        cycle.clear();
        if !self.is_free(e) {
            return false;
        }
        cycle.push((e, 1));
        // After e (a → b) the cycle runs b → … → a: up from b, then down to a.
        let (mut a, mut b) = (self.source[e] as usize, self.target[e] as usize);
        let mut down: Vec<(usize, i64)> = Vec::new();
        let other = |u: usize, arc: usize| (self.source[arc] ^ self.target[arc]) as usize ^ u;
        while a != b {
            if forest.depth[b] >= forest.depth[a] {
                let arc = forest.parent_arc[b];
                // Moving from b to its parent: forward if the arc leaves b.
                cycle.push((
                    arc,
                    if self.source[arc] as usize == b {
                        1
                    } else {
                        -1
                    },
                ));
                b = other(b, arc);
            } else {
                let arc = forest.parent_arc[a];
                // Later traversed from a's parent down to a: forward if the arc enters a.
                down.push((
                    arc,
                    if self.target[arc] as usize == a {
                        1
                    } else {
                        -1
                    },
                ));
                a = other(a, arc);
            }
        }
        cycle.extend(down.into_iter().rev());
        cycle.iter().all(|&(arc, _)| self.is_free(arc))
    }

    /// The spanning tree of the (now basic) flow: each free-arc component hangs from the
    /// root by the artificial arc of its least-potential node; thread, sizes and potentials
    /// follow from one preorder walk per component. `forest` is the free arcs' BFS forest
    /// that [`Self::cancel_free_cycles`] ended with (no cycle left to close).
    fn install_tree(&mut self, forest: FreeForest) {
        let n = self.node_count;
        debug_assert!(forest.closers.is_empty());
        for e in n..self.source.len() {
            self.state[e] = if self.is_free(e) {
                STATE_TREE
            } else if self.flow[e] == 0 {
                STATE_LOWER
            } else {
                STATE_UPPER
            };
        }
        // Potentials relative to each BFS root, to find each component's least.
        let mut pot = vec![0i64; n];
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_unstable_by_key(|&u| forest.depth[u]);
        let mut comp_root = vec![0usize; n];
        for &u in &order {
            let arc = forest.parent_arc[u];
            if arc == NONE {
                comp_root[u] = u;
                continue;
            }
            let p = (self.source[arc] ^ self.target[arc]) as usize ^ u;
            comp_root[u] = comp_root[p];
            pot[u] = if self.source[arc] as usize == u {
                pot[p] - self.cost[arc]
            } else {
                pot[p] + self.cost[arc]
            };
        }
        let mut least = vec![NONE; n];
        for u in 0..n {
            let c = comp_root[u];
            if least[c] == NONE || pot[u] < pot[least[c]] {
                least[c] = u;
            }
        }
        let reps: Vec<usize> = (0..n)
            .filter(|&u| least[u] != NONE)
            .map(|u| least[u])
            .collect();
        self.artificial_arcs(&reps);
        self.hang_components(&reps);
    }

    /// Artificial arcs: the components' representatives hang from the root (flow 0, up);
    /// every other node's arc is as the cold start would make it, at flow 0, off the tree.
    fn artificial_arcs(&mut self, reps: &[usize]) {
        let n = self.node_count;
        let root = n;
        for u in 0..n {
            let e = u;
            self.flow[e] = 0;
            self.cap[e] = CAPACITY_UNBOUNDED;
            if self.supply[u] >= 0 {
                (self.source[e], self.target[e], self.cost[e]) = (u as u32, root as u32, 0);
            } else {
                (self.source[e], self.target[e], self.cost[e]) =
                    (root as u32, u as u32, self.art_cost);
            }
            self.state[e] = STATE_LOWER;
        }
        for &r in reps {
            (self.source[r], self.target[r], self.cost[r]) = (r as u32, root as u32, 0);
            self.state[r] = STATE_TREE;
        }
    }

    /// Parent, thread, subtree sizes and stored potentials of the tree: the root, then each
    /// representative's component in preorder.
    fn hang_components(&mut self, reps: &[usize]) {
        let n = self.node_count;
        let root = n;
        let mut start = vec![0usize; n + 1];
        for e in n..self.source.len() {
            if self.state[e] == STATE_TREE {
                start[self.source[e] as usize + 1] += 1;
                start[self.target[e] as usize + 1] += 1;
            }
        }
        for u in 0..n {
            start[u + 1] += start[u];
        }
        let mut fill = start.clone();
        let mut adjacent = vec![0usize; start[n]];
        for e in n..self.source.len() {
            if self.state[e] == STATE_TREE {
                for end in [self.source[e] as usize, self.target[e] as usize] {
                    adjacent[fill[end]] = e;
                    fill[end] += 1;
                }
            }
        }
        let mut preorder: Vec<usize> = Vec::with_capacity(n + 1);
        preorder.push(root);
        self.parent[root] = NONE;
        self.pred[root] = NONE;
        self.pi[root] = 0;
        let mut stack: Vec<usize> = Vec::new();
        for &r in reps {
            self.parent[r] = root;
            self.pred[r] = r;
            self.pred_dir[r] = DIR_UP;
            self.pi[r] = 0;
            stack.push(r);
            while let Some(u) = stack.pop() {
                preorder.push(u);
                for &e in &adjacent[start[u]..start[u + 1]] {
                    let v = (self.source[e] ^ self.target[e]) as usize ^ u;
                    if e == self.pred[u] {
                        continue; // the arc up to u's parent
                    }
                    self.parent[v] = u;
                    self.pred[v] = e;
                    if self.source[e] as usize == v {
                        self.pred_dir[v] = DIR_UP;
                        self.pi[v] = self.pi[u] - self.cost[e];
                    } else {
                        self.pred_dir[v] = DIR_DOWN;
                        self.pi[v] = self.pi[u] + self.cost[e];
                    }
                    stack.push(v);
                }
            }
        }
        debug_assert_eq!(preorder.len(), n + 1);
        for &u in &preorder {
            self.succ_num[u] = 1;
        }
        for &u in preorder.iter().rev() {
            if u != root {
                let p = self.parent[u];
                self.succ_num[p] += self.succ_num[u];
            }
        }
        self.thread_preorder(&preorder);
    }
}
