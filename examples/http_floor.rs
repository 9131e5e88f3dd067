//! The HTTP floor of a surge-day journey: what a server that does nothing but answer costs per
//! journey, on this machine, with the load test's traffic shape. It drives
//! `examples/serve_bytes` (axum serving fixed bytes from memory) with journeys of sparse
//! keep-alive requests (arrivals at a fixed rate, a think time between requests, a shared
//! `reqwest` client as in `nobat loadtest`) and reads the server's CPU from `/proc`.
//! No handler, no database, no JSON: anything the real server spends per journey beyond this
//! figure is ours; the figure itself is hyper, tokio and the kernel's loopback TCP.
//!
//! ```sh
//! taskset -c 0 target/release/examples/serve_bytes 127.0.0.1:9100 /a=answer.json &
//! taskset -c 1 target/release/examples/http_floor http://127.0.0.1:9100/a $! 1631 60 7
//! ```
//! Arguments: URL, the server's pid, arrivals per second, seconds of arrivals, requests per
//! journey. Think times are drawn uniformly from 200–2000 ms, as `surge-day.toml`'s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

const THINK_MS: std::ops::RangeInclusive<u64> = 200..=2000;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("argument {i} ({name}) missing or malformed"))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url: String = arg(&args, 0, "URL");
    let pid: u32 = arg(&args, 1, "server pid");
    let arrivals_per_sec: f64 = arg(&args, 2, "arrivals per second");
    let secs: f64 = arg(&args, 3, "seconds of arrivals");
    let requests_per_journey: u32 = arg(&args, 4, "requests per journey");

    let client = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .expect("a client");
    let answered = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let journeys = (arrivals_per_sec * secs).round() as u64;
    let cpu_before = nobat::loadtest::cpu::process_cpu_secs(pid).expect("the server's /proc");
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..journeys {
        let due = t0 + Duration::from_secs_f64(n as f64 / arrivals_per_sec);
        let (client, url) = (client.clone(), url.clone());
        let (answered, failed) = (answered.clone(), failed.clone());
        tasks.spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(n);
            let mut at = due;
            for _ in 0..requests_per_journey {
                tokio::time::sleep_until(at).await;
                let ok = match client.get(&url).send().await {
                    Ok(r) => r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let counter = if ok { &answered } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
                at = Instant::now() + Duration::from_millis(rng.gen_range(THINK_MS));
            }
        });
        // Keep the spawning itself on schedule without a task per arrival in advance.
        if n % 64 == 0 {
            tokio::time::sleep_until(due).await;
        }
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu_secs =
        nobat::loadtest::cpu::process_cpu_secs(pid).expect("the server's /proc") - cpu_before;
    let answered = answered.load(Ordering::Relaxed);
    println!(
        "journeys {journeys}, requests answered {answered}, failed {}, over {elapsed:.1} s; \
         server CPU {cpu_secs:.2} s = {:.1} µs per request = {:.3} ms per journey",
        failed.load(Ordering::Relaxed),
        cpu_secs * 1e6 / answered.max(1) as f64,
        cpu_secs * 1e3 / journeys.max(1) as f64,
    );
}
