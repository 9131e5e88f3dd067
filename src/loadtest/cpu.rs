//! What the spawned server spent: its process CPU seconds (`/proc/<pid>/stat`, all threads)
//! over the run, per completed journey, and per request kind from the server's own
//! `nobat_http_cpu_microseconds_total{route,method}` (each request's task: handler and
//! middleware; the server times one request in eight and scales up, so a kind with few
//! requests is an estimate). The rest (the booking writer, HTTP parsing, the sweeper, the runtime) is
//! reported as not attributed to a request. Sampled when arrivals start and when the drain
//! ends, so a regression shows in the next run's report. Beside the CPU, the database's
//! commits (`Commits`): each is an fsync, the largest cost per journey below saturation, and
//! the bytes the server made the kernel write to storage (`/proc/<pid>/io`), where the commits'
//! write amplification shows. Beside the server, the generator's own CPU (`GeneratorCpu`): a
//! generator near the limit of its cores delays its own requests, and the run then measures it.

use std::collections::BTreeMap;

use serde::Serialize;

/// One reading of the server.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub cpu_secs: f64,
    /// (method, route) → (CPU µs in the request's task, requests).
    pub routes: BTreeMap<(String, String), (f64, f64)>,
    /// The commit counters (`COMMIT_SERIES`), by series as exposed (name and labels).
    pub commits: BTreeMap<String, f64>,
    /// Bytes the process caused to be written to storage (`write_bytes` of `/proc/<pid>/io`;
    /// `None` where the kernel does not say).
    pub storage_write_bytes: Option<u64>,
}

/// The series `Commits` is made of: booking batches (both backends) and the SQLite writer
/// thread's transactions by kind and its writes per transaction (`store::lite_writer`).
const COMMIT_SERIES: [&str; 5] = [
    "nobat_booking_batch_size_sum",
    "nobat_booking_batch_size_count",
    SQLITE_TRANSACTIONS,
    "nobat_sqlite_writes_per_transaction_sum",
    "nobat_sqlite_writes_per_transaction_count",
];

/// The writer thread's transactions, one series per `kind` label.
const SQLITE_TRANSACTIONS: &str = "nobat_sqlite_transactions_total";

/// What the database committed over the run, per completed journey where it helps.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Commits {
    /// Booking batches (one transaction each, on either backend).
    pub booking_batches: u64,
    pub booking_requests_per_batch: f64,
    /// SQLite: every transaction of the writer thread by what it ran (`booking_batch`,
    /// `writes`: applications, payments and other writes of their own grouped, `large_write`);
    /// empty on PostgreSQL, where each such write is a transaction of its request.
    pub sqlite_transactions: BTreeMap<String, u64>,
    pub sqlite_transactions_per_journey: Option<f64>,
    pub sqlite_writes_per_transaction: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteCpu {
    pub method: String,
    pub route: String,
    pub requests: u64,
    pub cpu_secs: f64,
    pub cpu_us_per_request: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerCpu {
    /// Server process CPU (user + system, all threads) from the first arrival to the drain.
    pub cpu_secs: f64,
    pub journeys_completed: u64,
    pub cpu_ms_per_journey: f64,
    pub requests: u64,
    pub cpu_us_per_request: f64,
    /// Per request kind, most CPU first.
    pub by_route: Vec<RouteCpu>,
    /// CPU outside any request's task: the booking writer, HTTP parsing, sweeper, runtime.
    pub not_attributed_secs: f64,
    pub commits: Commits,
    /// What the server made the kernel write to storage over the run (its WAL, checkpoints and
    /// database file; on PostgreSQL the database's own writes are not the server's).
    pub storage_write_mib: Option<f64>,
    pub storage_write_kib_per_journey: Option<f64>,
}

/// This generator's own CPU over the same span as `ServerCpu`.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratorCpu {
    pub cpu_secs: f64,
    pub wall_secs: f64,
    /// CPU seconds per second of the span: 0.9 is 90 % of one core.
    pub busy_cores: f64,
    /// The cores it may run on (its affinity, e.g. after `--generator-cpus`).
    pub cores: usize,
}

/// At this share of its cores, the generator's own queueing shows in the latencies it reports.
const GENERATOR_BUSY_WARNING: f64 = 0.85;

/// A reading of this process, taken beside each `Sample` of the server.
#[derive(Debug, Clone, Copy)]
pub struct GeneratorSample {
    cpu_secs: f64,
    at: std::time::Instant,
}

impl GeneratorSample {
    pub fn now() -> Option<Self> {
        Some(Self {
            cpu_secs: process_cpu_secs(std::process::id())?,
            at: std::time::Instant::now(),
        })
    }

    /// What this process spent since `self`.
    pub fn until(&self, after: &Self) -> GeneratorCpu {
        let cpu_secs = (after.cpu_secs - self.cpu_secs).max(0.0);
        let wall_secs = after.at.saturating_duration_since(self.at).as_secs_f64();
        GeneratorCpu {
            cpu_secs: round3(cpu_secs),
            wall_secs: round3(wall_secs),
            busy_cores: round3(cpu_secs / wall_secs.max(1e-9)),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// `write_bytes` of a `/proc/<pid>/io` text.
fn io_write_bytes(io: &str) -> Option<u64> {
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))?
        .trim()
        .parse()
        .ok()
}

/// Bytes a process caused to be written to storage so far (needs the right to trace it: the
/// spawned server is this process's child).
fn storage_write_bytes(pid: u32) -> Option<u64> {
    io_write_bytes(&std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?)
}

/// User + system CPU seconds of a process, all its threads.
pub fn process_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = stat_ticks(&stat)?;
    // SAFETY: sysconf only reads a configuration value.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_sec > 0).then(|| ticks as f64 / per_sec as f64)
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line; the command name in
/// parentheses may itself hold spaces and parentheses, so fields count from its last `)`.
fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After `)`: state is field 3, so utime (14) is index 11 and stime (15) index 12.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let len = labels[start..].find('"')?;
    Some(&labels[start..start + len])
}

/// The per-route CPU and request counters in a Prometheus text exposition.
pub fn parse_metrics(text: &str) -> BTreeMap<(String, String), (f64, f64)> {
    let mut routes: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        let (is_cpu, rest) = if let Some(r) = line.strip_prefix("nobat_http_cpu_microseconds_total")
        {
            (true, r)
        } else if let Some(r) = line.strip_prefix("nobat_http_requests_total") {
            (false, r)
        } else {
            continue;
        };
        let Some((labels, value)) = rest.strip_prefix('{').and_then(|r| r.rsplit_once('}')) else {
            continue;
        };
        let (Some(route), Some(method), Ok(value)) = (
            label(labels, "route"),
            label(labels, "method"),
            value.trim().parse::<f64>(),
        ) else {
            continue;
        };
        let e = routes
            .entry((method.to_string(), route.to_string()))
            .or_default();
        if is_cpu {
            e.0 += value;
        } else {
            e.1 += value;
        }
    }
    routes
}

/// The `COMMIT_SERIES` values of an exposition.
pub fn parse_commits(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| COMMIT_SERIES.iter().any(|s| line.starts_with(s)))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_string(), value.trim().parse::<f64>().ok()?))
        })
        .collect()
}

/// The commits between two readings of `parse_commits`.
fn commits_between(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    journeys: u64,
) -> Commits {
    let delta = |series: &str| {
        (after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0))
            .max(0.0)
    };
    let ratio = |sum: f64, count: f64| {
        if count > 0.0 {
            round1(sum / count)
        } else {
            0.0
        }
    };
    let batches = delta("nobat_booking_batch_size_count");
    let sqlite_transactions: BTreeMap<String, u64> = after
        .keys()
        .filter_map(|series| {
            let kind = label(series.strip_prefix(SQLITE_TRANSACTIONS)?, "kind")?;
            Some((kind.to_string(), delta(series).round() as u64))
        })
        .collect();
    let (sqlite_transactions_per_journey, sqlite_writes_per_transaction) =
        if sqlite_transactions.is_empty() {
            (None, None)
        } else {
            let total: u64 = sqlite_transactions.values().sum();
            (
                Some(round3(total as f64 / journeys.max(1) as f64)),
                Some(ratio(
                    delta("nobat_sqlite_writes_per_transaction_sum"),
                    delta("nobat_sqlite_writes_per_transaction_count"),
                )),
            )
        };
    Commits {
        booking_batches: batches.round() as u64,
        booking_requests_per_batch: ratio(delta("nobat_booking_batch_size_sum"), batches),
        sqlite_transactions,
        sqlite_transactions_per_journey,
        sqlite_writes_per_transaction,
    }
}

/// Reads the server's CPU and its per-route counters now.
pub async fn sample(pid: u32, client: &reqwest::Client, base_url: &str) -> Option<Sample> {
    let cpu_secs = process_cpu_secs(pid)?;
    let text = client
        .get(format!("{base_url}/metrics"))
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(Sample {
        cpu_secs,
        routes: parse_metrics(&text),
        commits: parse_commits(&text),
        storage_write_bytes: storage_write_bytes(pid),
    })
}

/// What the server spent between two samples, for `journeys` completed journeys.
pub fn between(before: &Sample, after: &Sample, journeys: u64) -> ServerCpu {
    let cpu_secs = (after.cpu_secs - before.cpu_secs).max(0.0);
    let mut by_route: Vec<RouteCpu> = after
        .routes
        .iter()
        .filter(|((_, route), _)| route != "/metrics")
        .map(|(key, (cpu_us, n))| {
            let (cpu0, n0) = before.routes.get(key).copied().unwrap_or_default();
            let requests = (n - n0).max(0.0).round() as u64;
            let cpu = ((cpu_us - cpu0) / 1e6).max(0.0);
            RouteCpu {
                method: key.0.clone(),
                route: key.1.clone(),
                requests,
                cpu_secs: round3(cpu),
                cpu_us_per_request: round1(cpu * 1e6 / requests.max(1) as f64),
            }
        })
        .filter(|r| r.requests > 0)
        .collect();
    by_route.sort_by(|a, b| b.cpu_secs.total_cmp(&a.cpu_secs));
    let attributed: f64 = by_route.iter().map(|r| r.cpu_secs).sum();
    let requests: u64 = by_route.iter().map(|r| r.requests).sum();
    let written = before
        .storage_write_bytes
        .zip(after.storage_write_bytes)
        .map(|(b, a)| a.saturating_sub(b) as f64);
    ServerCpu {
        cpu_secs: round3(cpu_secs),
        journeys_completed: journeys,
        cpu_ms_per_journey: round3(cpu_secs * 1e3 / journeys.max(1) as f64),
        requests,
        cpu_us_per_request: round1(cpu_secs * 1e6 / requests.max(1) as f64),
        by_route,
        not_attributed_secs: round3((cpu_secs - attributed).max(0.0)),
        commits: commits_between(&before.commits, &after.commits, journeys),
        storage_write_mib: written.map(|b| round1(b / (1024.0 * 1024.0))),
        storage_write_kib_per_journey: written.map(|b| round1(b / 1024.0 / journeys.max(1) as f64)),
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The report's section on the server's CPU.
pub fn markdown(c: &ServerCpu) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n## Server CPU\n\n{:.2} CPU s over the run: **{:.2} ms per completed journey** ({} journeys), {:.1} µs per request ({} requests); {:.2} s outside any request's task (booking writer, HTTP parsing, sweeper, runtime).\n",
        c.cpu_secs, c.cpu_ms_per_journey, c.journeys_completed, c.cpu_us_per_request, c.requests, c.not_attributed_secs
    );
    let _ = writeln!(
        s,
        "| request | count | CPU s in its task | µs per request |\n|---|---:|---:|---:|"
    );
    for r in &c.by_route {
        let _ = writeln!(
            s,
            "| {} {} | {} | {:.3} | {:.1} |",
            r.method, r.route, r.requests, r.cpu_secs, r.cpu_us_per_request
        );
    }
    let k = &c.commits;
    let _ = write!(
        s,
        "\nCommits: {} booking batches ({:.1} requests each)",
        k.booking_batches, k.booking_requests_per_batch
    );
    if let (Some(per_journey), Some(writes)) = (
        k.sqlite_transactions_per_journey,
        k.sqlite_writes_per_transaction,
    ) {
        let kinds: Vec<String> = k
            .sqlite_transactions
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        let _ = write!(
            s,
            "; SQLite writer: **{per_journey:.3} transactions per journey** ({}; {writes:.1} writes per `writes` transaction)",
            kinds.join(", ")
        );
    }
    s.push_str(".\n");
    if let (Some(mib), Some(kib)) = (c.storage_write_mib, c.storage_write_kib_per_journey) {
        let _ = writeln!(
            s,
            "\nWritten to storage by the server: {mib:.1} MiB, **{kib:.1} KiB per journey**."
        );
    }
    s
}

/// The report's line on the generator's own CPU (read in every run, a given target's too),
/// with a warning when it was near the limit of its cores.
pub fn generator_markdown(g: &GeneratorCpu) -> String {
    let mut s = format!(
        "\nThe generator itself: {:.2} CPU s in {:.1} s, {:.0} % of its {} core(s).\n",
        g.cpu_secs,
        g.wall_secs,
        100.0 * g.busy_cores / g.cores as f64,
        g.cores
    );
    if g.busy_cores >= GENERATOR_BUSY_WARNING * g.cores as f64 {
        s.push_str(
            "\n**The generator was near the limit of its cores: its own delays are in the latencies above.**\n",
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_ticks_count_from_the_last_parenthesis() {
        let stat = "4242 (no bat) (x) S 1 4242 4242 0 -1 4194560 1200 0 0 0 731 94 0 0 20 0 9 0";
        assert_eq!(stat_ticks(stat), Some(731 + 94));
        assert!(process_cpu_secs(std::process::id()).is_some());
    }

    #[test]
    fn per_route_cpu_between_two_scrapes() {
        let before = Sample {
            storage_write_bytes: Some(1 << 20),
            commits: parse_commits(
                "nobat_booking_batch_size_sum 40\n\
                 nobat_booking_batch_size_count 10\n\
                 nobat_sqlite_transactions_total{kind=\"writes\"} 5\n\
                 nobat_sqlite_writes_per_transaction_sum 15\n\
                 nobat_sqlite_writes_per_transaction_count 5\n",
            ),
            cpu_secs: 10.0,
            routes: parse_metrics(
                "nobat_http_cpu_microseconds_total{route=\"/v1/offices\",method=\"GET\"} 1000\n\
                 nobat_http_requests_total{route=\"/v1/offices\",method=\"GET\",status=\"200\"} 10\n",
            ),
        };
        let after = Sample {
            storage_write_bytes: Some(201 << 20),
            commits: parse_commits(
                "# TYPE nobat_booking_batch_size histogram\n\
                 nobat_booking_batch_size_bucket{le=\"1\"} 3\n\
                 nobat_booking_batch_size_sum 340\n\
                 nobat_booking_batch_size_count 60\n\
                 nobat_sqlite_transactions_total{kind=\"booking_batch\"} 50\n\
                 nobat_sqlite_transactions_total{kind=\"writes\"} 105\n\
                 nobat_sqlite_writes_per_transaction_sum 415\n\
                 nobat_sqlite_writes_per_transaction_count 105\n",
            ),
            cpu_secs: 12.5,
            routes: parse_metrics(
                "# TYPE nobat_http_requests_total counter\n\
                 nobat_http_cpu_microseconds_total{route=\"/v1/offices\",method=\"GET\"} 501000\n\
                 nobat_http_requests_total{route=\"/v1/offices\",method=\"GET\",status=\"200\"} 1020\n\
                 nobat_http_requests_total{route=\"/v1/offices\",method=\"GET\",status=\"422\"} 990\n\
                 nobat_http_cpu_microseconds_total{route=\"/v1/holds\",method=\"POST\"} 1000000\n\
                 nobat_http_requests_total{route=\"/v1/holds\",method=\"POST\",status=\"201\"} 500\n",
            ),
        };
        let c = between(&before, &after, 100);
        assert_eq!(c.cpu_secs, 2.5);
        assert_eq!(c.cpu_ms_per_journey, 25.0);
        assert_eq!(c.requests, 2_500);
        assert_eq!(c.by_route[0].route, "/v1/holds");
        assert_eq!(c.by_route[0].cpu_us_per_request, 2_000.0);
        assert_eq!(c.by_route[1].requests, 2_000);
        assert_eq!(c.by_route[1].cpu_us_per_request, 250.0);
        assert_eq!(c.not_attributed_secs, 1.0);
        // 50 batches of 300 requests in all; 150 transactions (the 50 batches and 100 of 400 writes).
        assert_eq!(c.commits.booking_batches, 50);
        assert_eq!(c.commits.booking_requests_per_batch, 6.0);
        assert_eq!(c.commits.sqlite_transactions["booking_batch"], 50);
        assert_eq!(c.commits.sqlite_transactions["writes"], 100);
        assert_eq!(c.commits.sqlite_transactions_per_journey, Some(1.5));
        assert_eq!(c.commits.sqlite_writes_per_transaction, Some(4.0));
        assert!(markdown(&c).contains("**1.500 transactions per journey**"));
        // 200 MiB over 100 journeys.
        assert_eq!(c.storage_write_mib, Some(200.0));
        assert_eq!(c.storage_write_kib_per_journey, Some(2048.0));
        assert!(markdown(&c).contains("**2048.0 KiB per journey**"));
        let busy = GeneratorCpu {
            cpu_secs: 9.0,
            wall_secs: 10.0,
            busy_cores: 0.9,
            cores: 1,
        };
        assert!(generator_markdown(&busy).contains("90 % of its 1 core(s)"));
        assert!(generator_markdown(&busy).contains("near the limit of its cores"));
        let idle = GeneratorCpu {
            busy_cores: 0.5,
            ..busy.clone()
        };
        assert!(!generator_markdown(&idle).contains("near the limit"));
        let two = GeneratorCpu { cores: 2, ..busy };
        assert!(!generator_markdown(&two).contains("near the limit"));
    }

    #[test]
    fn proc_io_write_bytes_and_this_process_cpu() {
        let io = "rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 0\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n";
        assert_eq!(io_write_bytes(io), Some(4096));
        assert_eq!(io_write_bytes("rchar: 10\n"), None);
        let before = GeneratorSample::now().expect("this process's /proc/self/stat");
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        let g = before.until(&GeneratorSample::now().unwrap());
        assert!(g.wall_secs >= 0.03 && g.cores >= 1 && g.busy_cores >= 0.0);
    }

    #[test]
    fn no_sqlite_writer_no_sqlite_figures() {
        let none = BTreeMap::new();
        let after = parse_commits(
            "nobat_booking_batch_size_sum 8\nnobat_booking_batch_size_count 2\n\
             nobat_http_requests_total{route=\"/v1/holds\",method=\"POST\",status=\"201\"} 8\n",
        );
        assert_eq!(after.len(), 2);
        let c = commits_between(&none, &after, 4);
        assert_eq!(c.booking_batches, 2);
        assert_eq!(c.booking_requests_per_batch, 4.0);
        assert!(c.sqlite_transactions.is_empty());
        assert_eq!(c.sqlite_transactions_per_journey, None);
    }
}
