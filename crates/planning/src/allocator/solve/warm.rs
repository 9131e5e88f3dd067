//! The fine network's starting flow, spread from the coarse optimum (see `seed_from_coarse`).
//!
//! The coarse problem differs from the fine one only in its zones: the office entries, day
//! arcs, chain arcs and classes are the same nodes and arcs. So its optimum becomes a fine
//! flow by handing each coarse zone's flow to its member zones (a north-west-corner fill:
//! members in zone order take the coarse zone's offices in order, which keeps the flow's
//! free arcs nearly a forest) and copying the office side unchanged. Where a member cannot
//! reach an office its coarse zone used (beyond its `max_km`), that part goes unassigned
//! instead and the office gives back the seats (its latest days first). The result is a
//! feasible flow close to the fine optimum, from which the simplex starts (its
//! `start_from_flow`) instead of from the artificial basis: a start, never an answer, since
//! the solve and the pricing rounds still prove optimality.

use super::{CandidateArc, Context, StageNet};

/// The coarse optimum's flow, by coarse zone and by office-side arc.
pub(super) struct CoarseFlow {
    /// The coarse zone of each fine zone (`u32::MAX` for inactive ones).
    parent: Vec<u32>,
    /// (coarse zone, office, flow) of the coarse candidate arcs with flow, sorted.
    zone_office: Vec<(u32, u32, i64)>,
    /// Per coarse zone, the flow on its unassigned arc.
    unassigned: Vec<i64>,
    /// Per day arc (the model's `day_arcs` order), its flow.
    day_flow: Vec<i64>,
    /// Per entry chain arc (office-major), its flow.
    chain_flow: Vec<i64>,
}

impl CoarseFlow {
    pub(super) fn read(net: &StageNet, candidates: &[CandidateArc], parent: Vec<u32>) -> Self {
        let mut zone_office: Vec<(u32, u32, i64)> = candidates
            .iter()
            .zip(&net.candidate_arc)
            .map(|(c, &arc)| (c.zone, c.office, net.net.flow(arc)))
            .filter(|x| x.2 > 0)
            .collect();
        zone_office.sort_unstable();
        Self {
            parent,
            zone_office,
            unassigned: net
                .unassigned_arc
                .iter()
                .map(|&a| net.net.flow(a))
                .collect(),
            day_flow: net.day_arc.iter().map(|&a| net.net.flow(a)).collect(),
            chain_flow: net.chain_arc.iter().map(|&a| net.net.flow(a)).collect(),
        }
    }
}

/// A feasible flow of the fine network, by zone and by office-side arc.
pub(super) struct SpreadFlow {
    /// (fine zone, office, flow, distance_m).
    zone_office: Vec<(u32, u32, i64, i64)>,
    /// Per fine zone, its unassigned flow.
    unassigned: Vec<i64>,
    day_flow: Vec<i64>,
    chain_flow: Vec<i64>,
}

impl Context<'_> {
    /// Spreads each coarse zone's flow over its members (see the module docs).
    pub(super) fn spread_coarse_flow(&self, coarse: &CoarseFlow) -> SpreadFlow {
        let coarse_count = coarse.unassigned.len();
        // Members of each coarse zone, in zone order: `members[start[p]..start[p + 1]]`.
        let mut start = vec![0usize; coarse_count + 1];
        for &z in self.active {
            start[coarse.parent[z as usize] as usize + 1] += 1;
        }
        for p in 0..coarse_count {
            start[p + 1] += start[p];
        }
        let mut fill = start.clone();
        let mut members = vec![0u32; self.active.len()];
        let mut active_sorted = self.active.to_vec();
        active_sorted.sort_unstable();
        for z in active_sorted {
            let p = coarse.parent[z as usize] as usize;
            members[fill[p]] = z;
            fill[p] += 1;
        }
        let mut spread = SpreadFlow {
            zone_office: Vec::new(),
            unassigned: vec![0; self.zones.len()],
            day_flow: coarse.day_flow.clone(),
            chain_flow: coarse.chain_flow.clone(),
        };
        // Seats an office entry gives back: (office, entry, applicants).
        let mut given_back: Vec<(u32, usize, i64)> = Vec::new();
        let mut cursor = 0usize;
        // The coarse zone's targets: (Some(office) or None = unassigned, flow left).
        let mut targets: Vec<(Option<u32>, i64)> = Vec::new();
        for p in 0..coarse_count {
            targets.clear();
            while cursor < coarse.zone_office.len() && coarse.zone_office[cursor].0 as usize == p {
                let (_, o, f) = coarse.zone_office[cursor];
                targets.push((Some(o), f));
                cursor += 1;
            }
            if coarse.unassigned[p] > 0 {
                targets.push((None, coarse.unassigned[p]));
            }
            self.fill_members(
                &members[start[p]..start[p + 1]],
                &mut targets,
                &mut spread,
                &mut given_back,
            );
        }
        for (o, entry, seats) in given_back {
            self.give_back(&mut spread, o, entry, seats);
        }
        spread
    }

    /// Hands one coarse zone's `targets` (office or unassigned, flow) to its `members`:
    /// nearest pairs first (a least-cost fill of this small transportation problem; the
    /// unassigned flow goes last, to whoever is left), so the start is close to the fine
    /// optimum (seed 1 of the saturated instance: the first fine solve's pivots fell from
    /// 272 k with a north-west-corner fill). What a member cannot reach goes unassigned and
    /// the office gives the seats back.
    fn fill_members(
        &self,
        members: &[u32],
        targets: &mut [(Option<u32>, i64)],
        spread: &mut SpreadFlow,
        given_back: &mut Vec<(u32, usize, i64)>,
    ) {
        let mut left: Vec<i64> = members
            .iter()
            .map(|&z| self.zones[z as usize].count)
            .collect();
        // (metres or i64::MAX for unassigned, member, target); unreachable pairs left out.
        let mut pairs: Vec<(i64, u32, u32)> = Vec::with_capacity(members.len() * targets.len());
        for (m, &z) in members.iter().enumerate() {
            let zone = &self.zones[z as usize];
            for (t, target) in targets.iter().enumerate() {
                let key = match target.0 {
                    Some(o) => zone.metres_to(&self.problem.offices[o as usize]),
                    None => Some(i64::MAX),
                };
                if let Some(key) = key {
                    pairs.push((key, m as u32, t as u32));
                }
            }
        }
        pairs.sort_unstable();
        for &(d, m, t) in &pairs {
            let (m, t) = (m as usize, t as usize);
            let take = left[m].min(targets[t].1);
            if take == 0 {
                continue;
            }
            let z = members[m];
            match targets[t].0 {
                Some(o) => spread.zone_office.push((z, o, take, d)),
                None => spread.unassigned[z as usize] += take,
            }
            left[m] -= take;
            targets[t].1 -= take;
        }
        // Members left with flow only their unreachable offices had room for.
        let mut t = 0usize;
        for (m, &z) in members.iter().enumerate() {
            while left[m] > 0 {
                while targets[t].1 == 0 {
                    t += 1;
                }
                let take = left[m].min(targets[t].1);
                let o = targets[t]
                    .0
                    .expect("an unassigned target is never out of reach");
                spread.unassigned[z as usize] += take;
                given_back.push((o, self.zones[z as usize].entry, take));
                left[m] -= take;
                targets[t].1 -= take;
            }
        }
    }

    /// Takes `seats` of office `o`'s flow entering at `entry` off its day arcs, latest day
    /// first, passing what its own days cannot give on down the entry chain.
    fn give_back(&self, spread: &mut SpreadFlow, o: u32, entry: usize, mut seats: i64) {
        let entries = self.entry_days.len();
        let first = self.day_arcs.partition_point(|d| d.0 < o);
        let end = self.day_arcs.partition_point(|d| d.0 <= o);
        for e in entry..entries {
            for j in (first..end).rev() {
                if seats == 0 {
                    return;
                }
                if super::entry_of(self.entry_days, self.day_arcs[j].1) == e {
                    let take = seats.min(spread.day_flow[j]);
                    spread.day_flow[j] -= take;
                    seats -= take;
                }
            }
            if seats == 0 || e + 1 == entries {
                break;
            }
            // The rest had flowed on to the next entry.
            let chain = o as usize * (entries - 1) + e;
            let take = seats.min(spread.chain_flow[chain]);
            spread.chain_flow[chain] -= take;
            seats = take;
        }
        debug_assert_eq!(seats, 0, "an office gives back only seats it had filled");
    }
}

impl SpreadFlow {
    /// The spread's zone → office pairs that are not candidates yet (the fine network needs
    /// their arcs to carry the flow).
    pub(super) fn missing_candidates(&self, candidates: &[CandidateArc]) -> Vec<CandidateArc> {
        // (zone, office) as one u64: sorting and searching plain words is the cheaper.
        let key = |zone: u32, office: u32| (u64::from(zone) << 32) | u64::from(office);
        let mut have: Vec<u64> = candidates.iter().map(|c| key(c.zone, c.office)).collect();
        have.sort_unstable();
        let mut missing: Vec<CandidateArc> = self
            .zone_office
            .iter()
            .filter(|x| have.binary_search(&key(x.0, x.1)).is_err())
            .map(|&(zone, office, _, distance_m)| CandidateArc {
                zone,
                office,
                distance_m,
            })
            .collect();
        missing.sort_unstable_by_key(|c| (c.zone, c.office));
        missing.dedup_by_key(|c| (c.zone, c.office));
        missing
    }

    /// (arc id, flow) of every arc the spread uses in the fine stage network, whose
    /// candidates are sorted by zone node.
    pub(super) fn arc_flows(
        &self,
        ctx: &Context,
        stage: &StageNet,
        candidates: &[CandidateArc],
        node_of_zone: &[u32],
    ) -> Vec<(usize, i64)> {
        let za = ctx.active.len();
        let mut start = vec![0usize; za + 1];
        for c in candidates {
            start[node_of_zone[c.zone as usize] as usize + 1] += 1;
        }
        for i in 0..za {
            start[i + 1] += start[i];
        }
        let mut flow: Vec<(usize, i64)> = Vec::with_capacity(self.zone_office.len() + za);
        let mut class_flow = vec![0i64; ctx.class_count];
        for &(z, o, f, _) in &self.zone_office {
            let node = node_of_zone[z as usize] as usize;
            let i = (start[node]..start[node + 1])
                .find(|&i| candidates[i].office == o)
                .expect("every spread pair is a candidate");
            flow.push((stage.candidate_arc[i], f));
        }
        for (node, &z) in ctx.active.iter().enumerate() {
            let f = self.unassigned[z as usize];
            if f > 0 {
                flow.push((stage.unassigned_arc[node], f));
                class_flow[ctx.class_of_zone[z as usize]] += f;
            }
        }
        flow.extend(
            stage
                .day_arc
                .iter()
                .copied()
                .zip(self.day_flow.iter().copied()),
        );
        flow.extend(
            stage
                .chain_arc
                .iter()
                .copied()
                .zip(self.chain_flow.iter().copied()),
        );
        flow.extend(stage.class_to_sink.iter().copied().zip(class_flow));
        flow
    }
}
