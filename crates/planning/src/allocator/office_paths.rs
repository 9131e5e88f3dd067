//! An exact min-cost flow solver for the allocation network's own shape: successive shortest
//! paths whose searches run over offices, not zones.
//!
//! The network (see `solve.rs`) has hundreds of thousands of zones but only thousands of
//! offices:
//!
//! ```text
//! zone z --(d(z,o), unbounded)--> office o --(wait × day, seats)--> T
//! zone z --(penalty of z's class, unbounded)--> class c --(cap c)--> T
//! ```
//!
//! Zones are never adjacent to each other, so in the residual graph every path that passes
//! through a zone enters it backwards from an office (or class) where it has flow and leaves
//! forwards to another. The zone's potential cancels on such a two-arc step, so the step is an
//! edge between offices (or classes) with the static cost `d(z,b) − d(z,a)`. For each pair of
//! nodes the cheapest such step sits on top of a min-heap of zones (entries go stale when the
//! zone's flow at `a` drops to zero and are dropped lazily). Dijkstra then runs on a graph of
//! offices + classes + T: a few thousand nodes, whatever the number of applicants.
//!
//! The method is the textbook one (Ahuja, Magnanti & Orlin, ch. 9.7), on a pseudoflow: zones
//! with supply left are the sources, taken one at a time (top priority class first, which only
//! saves work). A search starts at the zone's own arcs (their reduced costs need not be ≥ 0: a
//! zone without flow has no arc into it), stops when a node with a deficit is settled (T, or
//! where a re-opened zone's flow was), moves as much as the path allows, and lowers the
//! potentials of the settled nodes by `D − dist` so every residual arc keeps a non-negative
//! reduced cost. On equal distances a target is settled first, so plateaus of tight steps are
//! not explored for nothing. An office's day arcs fill as a prefix in day order, so a pointer
//! to its first day with room is its whole state; T's reverse arcs (give back an office's last
//! seat) are merged into a search lazily, cheapest first, only when T is settled without a
//! deficit. Flow that reaches a class node is unassigned; it comes back out through
//! `class → office` steps when a later zone displaces it.
//!
//! **Pricing rounds** add arcs after a solve; the next solve keeps the optimum and re-opens
//! only the zones that gained arcs (their flow becomes supply again, a deficit where it was).
//!
//! The result is certified like the other solvers': flow conservation, capacities, and
//! complementary slackness on every arc with the final potentials.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use super::network_simplex::{FlowError, CAPACITY_UNBOUNDED};

const NONE: u32 = u32::MAX;
const INF: i64 = i64::MAX;

/// Where an arc of the generic `add_arc` interface lives in this solver.
#[derive(Debug, Clone, Copy)]
enum ArcRef {
    /// zone → office, index into `cand`.
    Candidate(u32),
    /// zone → its class: the zone's unassigned flow.
    Unassigned(u32),
    /// office → T, index into `days`.
    Day(u32),
    /// class → T.
    ClassSink(u32),
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    zone: u32,
    office: u32,
    cost: i64,
}

#[derive(Debug, Clone, Copy)]
struct DayArc {
    office: u32,
    cost: i64,
    cap: i64,
}

/// One zone-step between two search nodes: leave `from` by taking back a unit of `out` (a
/// candidate position with flow, or a zone's unassigned flow), enter `to` by `into`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    key: i64,
    out: u32,
    into: u32,
}

impl Ord for Step {
    fn cmp(&self, other: &Self) -> Ordering {
        // Min-heap on key; the rest only makes the order total (and runs reproducible).
        other
            .key
            .cmp(&self.key)
            .then(other.out.cmp(&self.out))
            .then(other.into.cmp(&self.into))
    }
}

impl PartialOrd for Step {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// How a search node was reached.
#[derive(Debug, Clone, Copy)]
enum Pred {
    None,
    /// From the seeded zone (`out`) by its first arc (`into`: a candidate position, or the
    /// zone with [`CLASS_BIT`] for its unassigned arc).
    Source(Step),
    /// From node `from` through a zone-step.
    Step {
        from: u32,
        step: Step,
    },
    /// T, from an office's first day with room.
    Day {
        office: u32,
    },
    /// T, from a class.
    ClassSink {
        class: u32,
    },
    /// An office, from T: its last filled seat is given back.
    Unfill {
        office: u32,
    },
    /// A class, from T: one of its unassigned units is taken back.
    UnfillClass {
        class: u32,
    },
}

/// Successive shortest paths on the zone → office → T network. Node layout of the generic
/// interface: zones `0..zones`, offices next, then classes, then the sink.
#[derive(Debug, Clone)]
pub struct OfficePaths {
    zones: usize,
    offices: usize,
    classes: usize,
    supply: Vec<i64>,
    arcs: Vec<ArcRef>,
    cand: Vec<Candidate>,
    days: Vec<DayArc>,
    zone_class: Vec<u32>,
    zone_penalty: Vec<i64>,
    class_cap: Vec<i64>,
    class_arc_seen: Vec<bool>,
    // Solution (valid after `solve`).
    cand_flow: Vec<i64>,
    unassigned: Vec<i64>,
    day_flow: Vec<i64>,
    class_flow: Vec<i64>,
    /// Potentials of offices, classes and T (search nodes).
    pi: Vec<i64>,
    zone_pi: Vec<i64>,
    /// Candidate arcs at the last successful solve (those added later are new).
    solved_cands: Option<usize>,
    work: u64,
}

impl OfficePaths {
    /// `supply` is indexed by node (zones first, the sink last, negative).
    pub fn new(supply: Vec<i64>, zones: usize, offices: usize, classes: usize) -> Self {
        assert_eq!(supply.len(), zones + offices + classes + 1, "node layout");
        assert!(zones < CLASS_BIT as usize, "zone ids must stay below 2^31");
        Self {
            zones,
            offices,
            classes,
            supply,
            arcs: Vec::new(),
            cand: Vec::new(),
            days: Vec::new(),
            zone_class: vec![NONE; zones],
            zone_penalty: vec![0; zones],
            class_cap: vec![0; classes],
            class_arc_seen: vec![false; classes],
            cand_flow: Vec::new(),
            unassigned: Vec::new(),
            day_flow: Vec::new(),
            class_flow: Vec::new(),
            pi: Vec::new(),
            zone_pi: Vec::new(),
            solved_cands: None,
            work: 0,
        }
    }

    fn sink(&self) -> usize {
        self.zones + self.offices + self.classes
    }

    fn shape_error(u: usize, v: usize, why: &str) -> FlowError {
        FlowError::Shape(format!("arc {u} -> {v}: {why}"))
    }

    /// Adds an arc; only the shapes of the allocation network are accepted, with costs >= 0.
    pub fn add_arc(&mut self, u: usize, v: usize, cap: i64, cost: i64) -> Result<usize, FlowError> {
        let (z_end, o_end, c_end, sink) = (
            self.zones,
            self.zones + self.offices,
            self.zones + self.offices + self.classes,
            self.sink(),
        );
        if cost < 0 {
            return Err(Self::shape_error(u, v, "negative cost"));
        }
        if cap < 0 {
            return Err(Self::shape_error(u, v, "negative capacity"));
        }
        let arc = if u < z_end && (z_end..o_end).contains(&v) {
            if cap != CAPACITY_UNBOUNDED && cap < self.supply[u] {
                return Err(Self::shape_error(u, v, "zone arcs must carry the zone"));
            }
            self.cand.push(Candidate {
                zone: u as u32,
                office: (v - z_end) as u32,
                cost,
            });
            ArcRef::Candidate((self.cand.len() - 1) as u32)
        } else if u < z_end && (o_end..c_end).contains(&v) {
            if self.zone_class[u] != NONE {
                return Err(Self::shape_error(u, v, "a zone has one class arc"));
            }
            if cap != CAPACITY_UNBOUNDED && cap < self.supply[u] {
                return Err(Self::shape_error(u, v, "zone arcs must carry the zone"));
            }
            self.zone_class[u] = (v - o_end) as u32;
            self.zone_penalty[u] = cost;
            ArcRef::Unassigned(u as u32)
        } else if (z_end..o_end).contains(&u) && v == sink {
            self.days.push(DayArc {
                office: (u - z_end) as u32,
                cost,
                cap,
            });
            ArcRef::Day((self.days.len() - 1) as u32)
        } else if (o_end..c_end).contains(&u) && v == sink {
            let c = u - o_end;
            if cost != 0 || self.class_arc_seen[c] {
                return Err(Self::shape_error(u, v, "one free arc per class"));
            }
            self.class_arc_seen[c] = true;
            self.class_cap[c] = cap;
            ArcRef::ClassSink(c as u32)
        } else {
            return Err(Self::shape_error(u, v, "unsupported arc"));
        };
        self.arcs.push(arc);
        Ok(self.arcs.len() - 1)
    }

    pub fn arc_count(&self) -> usize {
        self.arcs.len()
    }

    /// Settled search nodes over all solves.
    pub fn work(&self) -> u64 {
        self.work
    }

    pub fn flow(&self, arc: usize) -> i64 {
        match self.arcs[arc] {
            ArcRef::Candidate(i) => self.cand_flow.get(i as usize).copied().unwrap_or(0),
            ArcRef::Unassigned(z) => self.unassigned.get(z as usize).copied().unwrap_or(0),
            ArcRef::Day(i) => self.day_flow.get(i as usize).copied().unwrap_or(0),
            ArcRef::ClassSink(c) => self.class_flow.get(c as usize).copied().unwrap_or(0),
        }
    }

    /// Node potential, with reduced costs `cost + π(u) − π(v)` (the simplex's convention).
    pub fn potential(&self, node: usize) -> i64 {
        if node < self.zones {
            self.zone_pi.get(node).copied().unwrap_or(0)
        } else {
            self.pi.get(node - self.zones).copied().unwrap_or(0)
        }
    }

    /// Solves, or re-solves after arcs were added: the previous optimum is kept except for
    /// the zones that gained arcs, whose flow is taken back and routed again. `max_work`
    /// bounds the settled search nodes of this call.
    pub fn solve(&mut self, max_work: u64) -> Result<(), FlowError> {
        let total: i64 = self.supply.iter().sum();
        if total != 0 {
            return Err(FlowError::Unbalanced(total));
        }
        if let Some(z) = (0..self.zones).find(|&z| self.supply[z] > 0 && self.zone_class[z] == NONE)
        {
            return Err(Self::shape_error(
                z,
                self.sink(),
                "a zone without a class arc",
            ));
        }
        if (self.zones..self.sink()).any(|n| self.supply[n] != 0) {
            return Err(FlowError::Shape(
                "only zones supply and only T demands".into(),
            ));
        }
        let mut run = Run::new(self)?;
        let work = run.route(max_work)?;
        let Run {
            cand_flow,
            unassigned,
            day_flow,
            class_flow,
            pi,
            cand_order,
            ..
        } = run;
        self.work += work;
        // Back to arc order.
        let mut flow = vec![0; self.cand.len()];
        for (pos, &i) in cand_order.iter().enumerate() {
            flow[i as usize] = cand_flow[pos];
        }
        self.cand_flow = flow;
        self.unassigned = unassigned;
        self.day_flow = day_flow;
        self.class_flow = class_flow;
        self.pi = pi;
        self.solved_cands = Some(self.cand.len());
        self.zone_pi = self.zone_potentials();
        self.certify()
    }

    /// A zone's potential: tight on the arcs it uses, and no arc of it negative.
    fn zone_potentials(&self) -> Vec<i64> {
        let o_pi = |o: u32| self.pi[o as usize];
        let c_pi = |c: u32| self.pi[self.offices + c as usize];
        let mut best = vec![i64::MIN; self.zones];
        for (z, b) in best.iter_mut().enumerate() {
            if self.zone_class[z] != NONE {
                *b = c_pi(self.zone_class[z]) - self.zone_penalty[z];
            }
        }
        for c in &self.cand {
            let b = &mut best[c.zone as usize];
            *b = (*b).max(o_pi(c.office) - c.cost);
        }
        best.iter()
            .map(|&b| if b == i64::MIN { 0 } else { b })
            .collect()
    }

    /// Conservation, capacities and complementary slackness on every arc.
    fn certify(&self) -> Result<(), FlowError> {
        let fail = |msg: String| Err(FlowError::Certificate(msg));
        let t = self.offices + self.classes;
        let mut zone_out = self.unassigned.clone();
        let mut office_in = vec![0i64; self.offices];
        let mut office_out = vec![0i64; self.offices];
        let mut class_in = vec![0i64; self.classes];
        let check = |what: &str, rc: i64, flow: i64, cap: i64| -> Result<(), FlowError> {
            if flow < 0 || flow > cap {
                return fail(format!("{what}: flow {flow} outside [0, {cap}]"));
            }
            if (flow < cap && rc < 0) || (flow > 0 && rc > 0) {
                return fail(format!(
                    "{what}: reduced cost {rc} with flow {flow} of {cap}"
                ));
            }
            Ok(())
        };
        for (i, c) in self.cand.iter().enumerate() {
            let f = self.cand_flow[i];
            let rc = c.cost + self.zone_pi[c.zone as usize] - self.pi[c.office as usize];
            check("zone arc", rc, f, CAPACITY_UNBOUNDED)?;
            zone_out[c.zone as usize] += f;
            office_in[c.office as usize] += f;
        }
        for (z, &sent) in zone_out.iter().enumerate() {
            if self.zone_class[z] == NONE {
                if self.supply[z] != 0 {
                    return fail(format!("zone {z} has no class arc"));
                }
                continue;
            }
            let c = self.zone_class[z] as usize;
            let rc = self.zone_penalty[z] + self.zone_pi[z] - self.pi[self.offices + c];
            check("unassigned arc", rc, self.unassigned[z], CAPACITY_UNBOUNDED)?;
            class_in[c] += self.unassigned[z];
            if sent != self.supply[z] {
                return fail(format!("zone {z} sends {sent} of {}", self.supply[z]));
            }
        }
        for (i, d) in self.days.iter().enumerate() {
            let rc = d.cost + self.pi[d.office as usize] - self.pi[t];
            check("day arc", rc, self.day_flow[i], d.cap)?;
            office_out[d.office as usize] += self.day_flow[i];
        }
        if office_in != office_out {
            return fail("office flow is not conserved".into());
        }
        for (c, &received) in class_in.iter().enumerate() {
            let rc = self.pi[self.offices + c] - self.pi[t];
            check("class arc", rc, self.class_flow[c], self.class_cap[c])?;
            if received != self.class_flow[c] {
                return fail(format!("class {c} flow is not conserved"));
            }
        }
        Ok(())
    }
}

/// Candidates grouped by zone, each zone's in (cost, office) order: the arc index at each
/// position, and each zone's first position.
fn group_candidates(net: &OfficePaths) -> (Vec<u32>, Vec<u32>) {
    let mut cand_order: Vec<u32> = (0..net.cand.len() as u32).collect();
    cand_order.sort_by_key(|&i| {
        let c = &net.cand[i as usize];
        (c.zone, c.cost, c.office)
    });
    let mut cand_start = vec![0u32; net.zones + 1];
    for c in &net.cand {
        cand_start[c.zone as usize + 1] += 1;
    }
    for z in 0..net.zones {
        cand_start[z + 1] += cand_start[z];
    }
    (cand_order, cand_start)
}

/// Day arcs grouped by office in day-cost order, and each office's first position.
fn group_days(net: &OfficePaths) -> (Vec<u32>, Vec<u32>) {
    let mut day_order: Vec<u32> = (0..net.days.len() as u32).collect();
    day_order.sort_by_key(|&i| {
        let d = &net.days[i as usize];
        (d.office, d.cost, i)
    });
    let mut day_start = vec![0u32; net.offices + 1];
    for d in &net.days {
        day_start[d.office as usize + 1] += 1;
    }
    for o in 0..net.offices {
        day_start[o + 1] += day_start[o];
    }
    (day_order, day_start)
}

/// The flow a solve starts from: cold (zero), or warm from the last optimum with the zones
/// that gained arcs re-opened.
struct WarmFlow {
    /// By candidate position (see `group_candidates`).
    cand_flow: Vec<i64>,
    unassigned: Vec<i64>,
    day_flow: Vec<i64>,
    class_flow: Vec<i64>,
    pi: Vec<i64>,
}

impl WarmFlow {
    fn from_last_optimum(net: &OfficePaths, cand_order: &[u32]) -> Self {
        let nodes = net.offices + net.classes + 1;
        let mut warm = Self {
            cand_flow: vec![0i64; net.cand.len()],
            unassigned: vec![0i64; net.zones],
            day_flow: vec![0i64; net.days.len()],
            class_flow: vec![0i64; net.classes],
            pi: vec![0i64; nodes],
        };
        let Some(solved) = net.solved_cands else {
            return warm;
        };
        let mut reopen = vec![false; net.zones];
        for c in &net.cand[solved..] {
            reopen[c.zone as usize] = true;
        }
        for (pos, &i) in cand_order.iter().enumerate() {
            let i = i as usize;
            if i < solved && !reopen[net.cand[i].zone as usize] {
                warm.cand_flow[pos] = net.cand_flow[i];
            }
        }
        for ((unassigned, &last), &reopened) in
            warm.unassigned.iter_mut().zip(&net.unassigned).zip(&reopen)
        {
            if !reopened {
                *unassigned = last;
            }
        }
        warm.day_flow[..net.day_flow.len()].copy_from_slice(&net.day_flow);
        warm.class_flow.copy_from_slice(&net.class_flow);
        warm.pi.copy_from_slice(&net.pi);
        warm
    }

    /// Each zone's supply not yet routed, and what each search node still has to receive.
    fn balances(
        &self,
        net: &OfficePaths,
        cand_order: &[u32],
    ) -> Result<(Vec<i64>, Vec<i64>), FlowError> {
        let nodes = net.offices + net.classes + 1;
        let mut excess: Vec<i64> = net.supply[..net.zones].to_vec();
        let mut deficit = vec![0i64; nodes];
        let t = nodes - 1;
        deficit[t] = excess.iter().sum();
        for z in 0..net.zones {
            excess[z] -= self.unassigned[z];
            if self.unassigned[z] > 0 {
                deficit[net.offices + net.zone_class[z] as usize] -= self.unassigned[z];
            }
        }
        for (pos, &i) in cand_order.iter().enumerate() {
            let c = &net.cand[i as usize];
            excess[c.zone as usize] -= self.cand_flow[pos];
            deficit[c.office as usize] -= self.cand_flow[pos];
        }
        for (i, d) in net.days.iter().enumerate() {
            deficit[d.office as usize] += self.day_flow[i];
            deficit[t] -= self.day_flow[i];
        }
        for c in 0..net.classes {
            deficit[net.offices + c] += self.class_flow[c];
            deficit[t] -= self.class_flow[c];
        }
        if excess.iter().chain(&deficit).any(|&x| x < 0) {
            return Err(FlowError::Shape(
                "the previous flow does not fit the network".into(),
            ));
        }
        Ok((excess, deficit))
    }
}

/// The state of one solve. Search nodes: offices `0..O`, classes `O..O+C`, T = `O+C`.
struct Run<'a> {
    net: &'a OfficePaths,
    /// Candidates grouped by zone (positions), and the arc index of each position.
    cand_start: Vec<u32>,
    cand_order: Vec<u32>,
    cand_flow: Vec<i64>,
    unassigned: Vec<i64>,
    /// Supply of each zone not yet routed.
    excess: Vec<i64>,
    remaining: i64,
    /// Units each search node still has to receive (T, and nodes whose zones were re-opened).
    deficit: Vec<i64>,
    /// Day arcs grouped by office in day-cost order; an office's days fill as a prefix and
    /// `fill_pos` is its first day with room.
    day_start: Vec<u32>,
    day_order: Vec<u32>,
    fill_pos: Vec<u32>,
    day_flow: Vec<i64>,
    class_flow: Vec<i64>,
    pi: Vec<i64>,
    /// Zone-step heaps per (from, to) pair of search nodes, and each node's outgoing pairs.
    pair_heap: HashMap<(u32, u32), u32>,
    heaps: Vec<BinaryHeap<Step>>,
    out_pairs: Vec<Vec<(u32, u32)>>,
    /// T's reverse day arcs (give back an office's last filled seat), by reduced cost less
    /// π(T): `(−(day cost + π(office)), office, version)`. A search that settles T without
    /// a deficit there merges these in lazily instead of relaxing every office.
    unfill_queue: BinaryHeap<Reverse<(i64, u32, u32)>>,
    unfill_version: Vec<u32>,
    /// T's distance once the current search has settled it (not as its target).
    t_dist: Option<i64>,
    // Search scratch.
    dist: Vec<i64>,
    settled: Vec<bool>,
    pred: Vec<Pred>,
    touched: Vec<u32>,
    /// `(distance, 0 for a node with a deficit else 1, node)`: on equal distances a target is
    /// settled first, so plateaus of equal labels are not explored for nothing.
    queue: BinaryHeap<Reverse<(i64, u8, u32)>>,
    borrowed: Vec<Reverse<(i64, u32, u32)>>,
}

impl<'a> Run<'a> {
    fn new(net: &'a OfficePaths) -> Result<Self, FlowError> {
        let nodes = net.offices + net.classes + 1;
        let (cand_order, cand_start) = group_candidates(net);
        let (day_order, day_start) = group_days(net);
        let warm = WarmFlow::from_last_optimum(net, &cand_order);
        let (excess, deficit) = warm.balances(net, &cand_order)?;
        let mut fill_pos = vec![0u32; net.offices];
        for o in 0..net.offices {
            let mut p = day_start[o];
            while p < day_start[o + 1] {
                let i = day_order[p as usize] as usize;
                if warm.day_flow[i] < net.days[i].cap {
                    break;
                }
                p += 1;
            }
            fill_pos[o] = p;
        }
        let remaining = excess.iter().sum();
        let mut run = Run {
            net,
            cand_start,
            cand_order,
            cand_flow: warm.cand_flow,
            unassigned: warm.unassigned,
            excess,
            remaining,
            deficit,
            day_start,
            day_order,
            fill_pos,
            day_flow: warm.day_flow,
            class_flow: warm.class_flow,
            pi: warm.pi,
            pair_heap: HashMap::new(),
            heaps: Vec::new(),
            out_pairs: vec![Vec::new(); nodes],
            unfill_queue: BinaryHeap::new(),
            unfill_version: vec![0; net.offices],
            t_dist: None,
            dist: vec![INF; nodes],
            settled: vec![false; nodes],
            pred: vec![Pred::None; nodes],
            touched: Vec::new(),
            queue: BinaryHeap::new(),
            borrowed: Vec::new(),
        };
        // Zone-steps of the flow that is already there.
        for pos in 0..run.cand_flow.len() as u32 {
            if run.cand_flow[pos as usize] > 0 {
                run.push_office_steps(pos);
            }
        }
        for z in 0..net.zones as u32 {
            if run.unassigned[z as usize] > 0 {
                run.push_class_steps(z);
            }
        }
        run.move_tight_deficits_to_sink();
        for o in 0..net.offices as u32 {
            run.refresh_unfill(o);
        }
        Ok(run)
    }

    /// A re-opened zone leaves a deficit where its flow was. Where the seat (or the
    /// unassigned unit) it held is on a tight arc, give that back too, so the deficit moves
    /// to T: searches then end at the first office with room instead of having to reach
    /// back to the old office.
    fn move_tight_deficits_to_sink(&mut self) {
        let net = self.net;
        let t = self.t() as usize;
        for o in 0..net.offices {
            while self.deficit[o] > 0 {
                let Some(i) = self.last_day(o) else { break };
                if net.days[i].cost + self.pi[o] - self.pi[t] != 0 {
                    break;
                }
                let back = self.deficit[o].min(self.day_flow[i]);
                self.unfill(o, back);
                self.deficit[o] -= back;
                self.deficit[t] += back;
            }
        }
        for c in 0..net.classes {
            let cn = net.offices + c;
            if self.deficit[cn] > 0 && self.pi[cn] == self.pi[t] {
                let back = self.deficit[cn];
                self.class_flow[c] -= back;
                self.deficit[cn] = 0;
                self.deficit[t] += back;
            }
        }
    }

    fn t(&self) -> u32 {
        (self.net.offices + self.net.classes) as u32
    }

    fn class_node(&self, c: u32) -> u32 {
        self.net.offices as u32 + c
    }

    fn zone_cands(&self, z: u32) -> std::ops::Range<usize> {
        self.cand_start[z as usize] as usize..self.cand_start[z as usize + 1] as usize
    }

    fn cand(&self, pos: u32) -> &Candidate {
        &self.net.cand[self.cand_order[pos as usize] as usize]
    }

    /// The day arc an office fills next, if it has room.
    fn room_day(&self, o: usize) -> Option<usize> {
        let p = self.fill_pos[o];
        (p < self.day_start[o + 1]).then(|| self.day_order[p as usize] as usize)
    }

    /// The day arc holding an office's last filled seat, if any.
    fn last_day(&self, o: usize) -> Option<usize> {
        if let Some(i) = self.room_day(o) {
            if self.day_flow[i] > 0 {
                return Some(i);
            }
        }
        let p = self.fill_pos[o];
        (p > self.day_start[o]).then(|| self.day_order[p as usize - 1] as usize)
    }

    fn fill(&mut self, o: usize, delta: i64) {
        let i = self.room_day(o).expect("a day with room");
        self.day_flow[i] += delta;
        let end = self.day_start[o + 1];
        while self.fill_pos[o] < end {
            let i = self.day_order[self.fill_pos[o] as usize] as usize;
            if self.day_flow[i] < self.net.days[i].cap {
                break;
            }
            self.fill_pos[o] += 1;
        }
        self.refresh_unfill(o as u32);
    }

    fn unfill(&mut self, o: usize, delta: i64) {
        let i = self.last_day(o).expect("a filled day");
        let p = self.fill_pos[o];
        self.day_flow[i] -= delta;
        if p > self.day_start[o] && self.day_order[p as usize - 1] as usize == i {
            self.fill_pos[o] = p - 1;
        }
        self.refresh_unfill(o as u32);
    }

    fn class_room(&self, c: usize) -> i64 {
        let cap = self.net.class_cap[c];
        if cap == CAPACITY_UNBOUNDED {
            INF
        } else {
            cap - self.class_flow[c]
        }
    }

    /// Re-files an office's reverse day arc (after its potential or its last filled seat
    /// changed); older entries of the office go stale.
    fn refresh_unfill(&mut self, o: u32) {
        let n = o as usize;
        self.unfill_version[n] = self.unfill_version[n].wrapping_add(1);
        if let Some(i) = self.last_day(n) {
            let key = -(self.net.days[i].cost + self.pi[n]);
            self.unfill_queue
                .push(Reverse((key, o, self.unfill_version[n])));
        }
    }

    /// The cheapest label T's reverse day arcs offer an office not yet settled, once T is
    /// settled in this search.
    fn peek_unfill(&mut self) -> Option<(i64, u32)> {
        let t_dist = self.t_dist?;
        let pi_t = self.pi[self.t() as usize];
        while let Some(&Reverse((key, o, version))) = self.unfill_queue.peek() {
            if version != self.unfill_version[o as usize] {
                self.unfill_queue.pop();
            } else if self.settled[o as usize] {
                let e = self.unfill_queue.pop().expect("peeked");
                self.borrowed.push(e);
            } else {
                let rc = key + pi_t;
                debug_assert!(rc >= 0, "reverse day arc reduced cost {rc}");
                return Some((t_dist + rc, o));
            }
        }
        None
    }

    /// Routes all excess; returns the settled search nodes.
    fn route(&mut self, max_work: u64) -> Result<u64, FlowError> {
        let mut work = 0u64;
        let mut order: Vec<u32> = (0..self.net.zones as u32)
            .filter(|&z| self.excess[z as usize] > 0)
            .collect();
        order.sort_by_key(|&z| (Reverse(self.net.zone_penalty[z as usize]), z));
        let mut next = 0usize;
        while self.remaining > 0 {
            while self.excess[order[next] as usize] == 0 {
                next += 1;
            }
            self.seed_zone(order[next]);
            let (target, settled) = self.search()?;
            work += settled;
            if work > max_work {
                self.reset_search();
                return Err(FlowError::PivotLimit(max_work));
            }
            self.augment(target);
        }
        Ok(work)
    }

    fn relax(&mut self, node: u32, d: i64, pred: Pred) {
        let n = node as usize;
        if self.settled[n] || d >= self.dist[n] {
            return;
        }
        if self.dist[n] == INF {
            self.touched.push(node);
        }
        self.dist[n] = d;
        self.pred[n] = pred;
        let rank = u8::from(self.deficit[n] == 0);
        self.queue.push(Reverse((d, rank, node)));
    }

    /// The cheapest live step of a pair, dropping stale tops.
    fn top_step(&mut self, heap: u32, from_class: bool) -> Option<Step> {
        let h = &mut self.heaps[heap as usize];
        while let Some(&s) = h.peek() {
            let live = if from_class {
                self.unassigned[s.out as usize] > 0
            } else {
                self.cand_flow[s.out as usize] > 0
            };
            if live {
                return Some(s);
            }
            h.pop();
        }
        None
    }

    /// Starts a search at one zone with excess: its first arcs are the only labels.
    fn seed_zone(&mut self, z: u32) {
        for pos in self.zone_cands(z) {
            let c = *self.cand(pos as u32);
            let step = Step {
                key: c.cost,
                out: z,
                into: pos as u32,
            };
            self.relax(
                c.office,
                c.cost - self.pi[c.office as usize],
                Pred::Source(step),
            );
        }
        let cn = self.class_node(self.net.zone_class[z as usize]);
        let step = Step {
            key: self.net.zone_penalty[z as usize],
            out: z,
            into: z | CLASS_BIT,
        };
        self.relax(cn, step.key - self.pi[cn as usize], Pred::Source(step));
    }

    /// Dijkstra from the seeded zone until a node with a deficit is settled; potentials of
    /// the settled nodes are updated. Returns the target and the number of settled nodes.
    fn search(&mut self) -> Result<(u32, u64), FlowError> {
        let net = self.net;
        let t = self.t();
        let mut settled = 0u64;
        let target = loop {
            let from_t = self.peek_unfill();
            let from_queue = loop {
                match self.queue.peek() {
                    Some(&Reverse((d, _, u)))
                        if self.settled[u as usize] || d > self.dist[u as usize] =>
                    {
                        self.queue.pop();
                    }
                    Some(&Reverse((d, _, u))) => break Some((d, u)),
                    None => break None,
                }
            };
            let (d, u) = match (from_t, from_queue) {
                (None, None) => {
                    self.reset_search();
                    return Err(FlowError::Infeasible(self.remaining));
                }
                (Some((label, o)), q) if q.is_none_or(|(d, _)| label < d) => {
                    let e = self.unfill_queue.pop().expect("peeked");
                    self.borrowed.push(e);
                    self.relax(o, label, Pred::Unfill { office: o });
                    continue;
                }
                (_, Some(q)) => {
                    self.queue.pop();
                    q
                }
                (Some(_), None) => unreachable!("handled above"),
            };
            let un = u as usize;
            self.settled[un] = true;
            settled += 1;
            if self.deficit[un] > 0 {
                break u;
            }
            let pi_u = self.pi[un];
            if u == t {
                // Give back a seat (offices: merged in lazily, cheapest first) or an
                // unassigned unit to make room elsewhere.
                self.t_dist = Some(d);
                for c in 0..net.classes {
                    if self.class_flow[c] > 0 {
                        let cn = net.offices + c;
                        let rc = -(self.pi[cn] - pi_u);
                        debug_assert!(rc >= 0, "reverse class arc reduced cost {rc}");
                        self.relax(cn as u32, d + rc, Pred::UnfillClass { class: c as u32 });
                    }
                }
                continue;
            }
            let from_class = un >= net.offices;
            if from_class {
                let c = un - net.offices;
                if self.class_room(c) > 0 {
                    let rc = pi_u - self.pi[t as usize];
                    debug_assert!(rc >= 0, "class arc reduced cost {rc}");
                    self.relax(t, d + rc, Pred::ClassSink { class: c as u32 });
                }
            } else if let Some(i) = self.room_day(un) {
                let rc = net.days[i].cost + pi_u - self.pi[t as usize];
                debug_assert!(rc >= 0, "day arc reduced cost {rc}");
                self.relax(t, d + rc, Pred::Day { office: u });
            }
            for k in 0..self.out_pairs[un].len() {
                let (to, heap) = self.out_pairs[un][k];
                if self.settled[to as usize] {
                    continue;
                }
                if let Some(step) = self.top_step(heap, from_class) {
                    let rc = step.key + pi_u - self.pi[to as usize];
                    debug_assert!(rc >= 0, "zone-step reduced cost {rc}");
                    self.relax(to, d + rc, Pred::Step { from: u, step });
                }
            }
        };
        let d_target = self.dist[target as usize];
        for &n in &self.touched {
            let n = n as usize;
            if self.settled[n] {
                self.pi[n] += self.dist[n] - d_target;
            }
        }
        Ok((target, settled))
    }

    /// Clears the search scratch; settled offices' reverse day arcs (potentials changed) are
    /// re-filed and the entries borrowed during the search go back.
    fn reset_search(&mut self) {
        self.t_dist = None;
        let touched = std::mem::take(&mut self.touched);
        for &n in &touched {
            let n = n as usize;
            self.dist[n] = INF;
            if std::mem::replace(&mut self.settled[n], false) && n < self.net.offices {
                self.refresh_unfill(n as u32);
            }
        }
        self.touched = touched;
        self.touched.clear();
        self.queue.clear();
        for e in std::mem::take(&mut self.borrowed) {
            let Reverse((_, node, version)) = e;
            if version == self.unfill_version[node as usize] {
                self.unfill_queue.push(e);
            }
        }
    }

    /// Moves as much as the last search's path allows from its source zone to its target.
    fn augment(&mut self, target: u32) {
        let net = self.net;
        let t = self.t();
        let mut path: Vec<Pred> = Vec::with_capacity(8);
        let mut node = target;
        let mut delta = self.deficit[target as usize];
        let source = loop {
            let p = self.pred[node as usize];
            path.push(p);
            match p {
                Pred::Day { office } => {
                    let i = self.room_day(office as usize).expect("room");
                    delta = delta.min(net.days[i].cap - self.day_flow[i]);
                    node = office;
                }
                Pred::ClassSink { class } => {
                    delta = delta.min(self.class_room(class as usize));
                    node = self.class_node(class);
                }
                Pred::Unfill { office } => {
                    let i = self.last_day(office as usize).expect("a filled day");
                    delta = delta.min(self.day_flow[i]);
                    node = t;
                }
                Pred::UnfillClass { class } => {
                    delta = delta.min(self.class_flow[class as usize]);
                    node = t;
                }
                Pred::Step { from, step } => {
                    let have = if from as usize >= net.offices {
                        self.unassigned[step.out as usize]
                    } else {
                        self.cand_flow[step.out as usize]
                    };
                    delta = delta.min(have);
                    node = from;
                }
                Pred::Source(step) => {
                    delta = delta.min(self.excess[step.out as usize]);
                    break step;
                }
                Pred::None => unreachable!("a settled path leads back to the source"),
            }
        };
        debug_assert!(delta > 0);
        self.reset_search();
        for p in path {
            match p {
                Pred::Day { office } => self.fill(office as usize, delta),
                Pred::ClassSink { class } => self.class_flow[class as usize] += delta,
                Pred::Unfill { office } => self.unfill(office as usize, delta),
                Pred::UnfillClass { class } => self.class_flow[class as usize] -= delta,
                Pred::Step { from, step } => {
                    if from as usize >= net.offices {
                        self.unassigned[step.out as usize] -= delta;
                    } else {
                        self.cand_flow[step.out as usize] -= delta;
                    }
                    self.add_flow(step.into, delta);
                }
                Pred::Source(step) => self.add_flow(step.into, delta),
                Pred::None => {}
            }
        }
        self.deficit[target as usize] -= delta;
        self.excess[source.out as usize] -= delta;
        self.remaining -= delta;
    }

    /// Adds flow on a first arc: a candidate position, or a zone's unassigned arc.
    fn add_flow(&mut self, into: u32, delta: i64) {
        if into & CLASS_BIT != 0 {
            let z = into & !CLASS_BIT;
            let was = self.unassigned[z as usize];
            self.unassigned[z as usize] += delta;
            if was == 0 {
                self.push_class_steps(z);
            }
        } else {
            let was = self.cand_flow[into as usize];
            self.cand_flow[into as usize] += delta;
            if was == 0 {
                self.push_office_steps(into);
            }
        }
    }

    /// Steps out of an office through a zone that now has flow there.
    fn push_office_steps(&mut self, pos: u32) {
        let c = *self.cand(pos);
        let from = c.office;
        for other in self.zone_cands(c.zone) {
            let o = *self.cand(other as u32);
            if o.office == from {
                continue;
            }
            let step = Step {
                key: o.cost - c.cost,
                out: pos,
                into: other as u32,
            };
            self.push_step(from, o.office, step);
        }
        let step = Step {
            key: self.net.zone_penalty[c.zone as usize] - c.cost,
            out: pos,
            into: c.zone | CLASS_BIT,
        };
        let to = self.class_node(self.net.zone_class[c.zone as usize]);
        self.push_step(from, to, step);
    }

    /// Steps out of a class through a zone that now has unassigned flow.
    fn push_class_steps(&mut self, zone: u32) {
        let from = self.class_node(self.net.zone_class[zone as usize]);
        let penalty = self.net.zone_penalty[zone as usize];
        for other in self.zone_cands(zone) {
            let o = *self.cand(other as u32);
            let step = Step {
                key: o.cost - penalty,
                out: zone,
                into: other as u32,
            };
            self.push_step(from, o.office, step);
        }
    }

    fn push_step(&mut self, from: u32, to: u32, step: Step) {
        let heaps = &mut self.heaps;
        let out_pairs = &mut self.out_pairs;
        let h = *self.pair_heap.entry((from, to)).or_insert_with(|| {
            heaps.push(BinaryHeap::new());
            out_pairs[from as usize].push((to, (heaps.len() - 1) as u32));
            (heaps.len() - 1) as u32
        });
        self.heaps[h as usize].push(step);
    }
}

/// Marks a first arc or a step's `into` as a zone's unassigned arc (zone ids stay below
/// 2^31).
const CLASS_BIT: u32 = 1 << 31;

#[cfg(test)]
mod tests {
    use super::*;

    /// Two zones (3 and 2 applicants), two offices, one class; office 0 has one day of 2
    /// seats and one of 5, office 1 one day of 1 seat.
    fn network(zone0_to_office1: bool) -> (OfficePaths, Vec<usize>) {
        // Nodes: zones 0,1; offices 2,3; class 4; sink 5.
        let mut net = OfficePaths::new(vec![3, 2, 0, 0, 0, -5], 2, 2, 1);
        let mut arcs = vec![
            net.add_arc(0, 2, CAPACITY_UNBOUNDED, 10).unwrap(),
            net.add_arc(1, 2, CAPACITY_UNBOUNDED, 4).unwrap(),
            net.add_arc(1, 3, CAPACITY_UNBOUNDED, 6).unwrap(),
            net.add_arc(2, 5, 2, 0).unwrap(),
            net.add_arc(2, 5, 5, 7).unwrap(),
            net.add_arc(3, 5, 1, 0).unwrap(),
            net.add_arc(0, 4, CAPACITY_UNBOUNDED, 1_000).unwrap(),
            net.add_arc(1, 4, CAPACITY_UNBOUNDED, 1_000).unwrap(),
            net.add_arc(4, 5, CAPACITY_UNBOUNDED, 0).unwrap(),
        ];
        if zone0_to_office1 {
            arcs.push(net.add_arc(0, 3, CAPACITY_UNBOUNDED, 1).unwrap());
        }
        (net, arcs)
    }

    fn cost(net: &OfficePaths, arcs: &[usize], costs: &[i64]) -> i64 {
        arcs.iter().zip(costs).map(|(&a, &c)| net.flow(a) * c).sum()
    }

    const COSTS: [i64; 10] = [10, 4, 6, 0, 7, 0, 1_000, 1_000, 0, 1];

    #[test]
    fn hand_checked_optimum() {
        let (mut net, arcs) = network(false);
        net.solve(1_000).unwrap();
        // Office 0 days: 2 at 0, then 7 each; office 1: 1 seat. Zone 1 takes office 1 (6)
        // and one seat of office 0 (4); zone 0 takes 3 seats of office 0 (10 + 0, 10 + 7,
        // 10 + 7): 6 + 4 + 10 + 17 + 17 = 54.
        assert_eq!(cost(&net, &arcs, &COSTS), 54);
    }

    #[test]
    fn a_warm_re_solve_after_adding_arcs_equals_a_cold_solve() {
        let (mut warm, _) = network(false);
        warm.solve(1_000).unwrap();
        warm.add_arc(0, 3, CAPACITY_UNBOUNDED, 1).unwrap();
        warm.solve(1_000).unwrap();
        let (mut cold, arcs) = network(true);
        cold.solve(1_000).unwrap();
        assert_eq!(cost(&warm, &arcs, &COSTS), cost(&cold, &arcs, &COSTS));
        // Zone 0 now takes office 1's seat (1); zone 1 takes office 0's cheap seats.
        assert_eq!(cost(&cold, &arcs, &COSTS), 1 + 4 + 4 + 17 + 17);
    }

    #[test]
    fn shapes_outside_the_allocation_network_are_refused() {
        let mut net = OfficePaths::new(vec![1, 0, 0, -1], 1, 1, 1);
        assert!(
            matches!(net.add_arc(2, 1, 1, 0), Err(FlowError::Shape(_))),
            "class to office"
        );
        assert!(
            net.add_arc(0, 1, CAPACITY_UNBOUNDED, -1).is_err(),
            "negative cost"
        );
        assert!(net.add_arc(1, 1, 1, 0).is_err(), "office to office");
        // A zone without a class arc cannot be routed.
        net.add_arc(0, 1, CAPACITY_UNBOUNDED, 1).unwrap();
        net.add_arc(1, 3, 1, 0).unwrap();
        assert!(net.solve(100).is_err());
    }

    #[test]
    fn too_little_room_is_reported_not_looped_on() {
        // One zone of 3, one office with 1 seat, and the class arc capped at 1.
        let mut net = OfficePaths::new(vec![3, 0, 0, -3], 1, 1, 1);
        net.add_arc(0, 1, CAPACITY_UNBOUNDED, 1).unwrap();
        net.add_arc(1, 3, 1, 0).unwrap();
        net.add_arc(0, 2, CAPACITY_UNBOUNDED, 100).unwrap();
        net.add_arc(2, 3, 1, 0).unwrap();
        assert_eq!(net.solve(100), Err(FlowError::Infeasible(1)));
    }
}
