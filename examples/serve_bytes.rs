//! The baseline of the listing figures in `scenarios/loadtest/README.md`: axum serving fixed
//! bytes from memory, one route per file, on the same runtime settings as `nobat serve`, so
//! that `wrk` against it and against the server in the same run gives the ratio of a listing's
//! rate to what serving its bytes costs.
//!
//! ```sh
//! cargo run --release --example serve_bytes -- 127.0.0.1:9100 /a=answer-a.json /b=answer-b.json
//! wrk -t1 -c64 -d10s http://127.0.0.1:9100/a
//! ```

use axum::body::Bytes;
use axum::http::header;
use axum::routing::get;
use axum::Router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:9100".into());
    let mut router = Router::new();
    for spec in args {
        let (path, file) = spec
            .split_once('=')
            .unwrap_or_else(|| panic!("{spec:?} is not ROUTE=FILE"));
        let bytes = Bytes::from(std::fs::read(file)?);
        router = router.route(
            path,
            get(move || {
                let b = bytes.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], b) }
            }),
        );
    }
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("serving on {listen}");
    axum::serve(listener, router).await
}
