//! What an event costs: the lean record shape in the file output (the same
//! text the CloudWatch output sends) and `sluice_ingest_bytes_total`.

use std::time::Duration;

use crate::support::{docker_send, scrape, wait_until, Addresses, Sidecar, TempPath};

#[test]
fn the_bytes_ingested_are_counted_by_kind() {
    let dir = TempPath::unique_dir("cost");
    let dir_text = dir.arg();
    let addresses = Addresses::pick();
    let sidecar = Sidecar::start_at(
        &addresses,
        &[],
        &[],
        &[
            ("SLUICE_OUTPUT_TYPE", "file"),
            ("SLUICE_FILE_DIR", &dir_text),
            ("SLUICE_FIRELENS_CONFIG", ""),
        ],
        &["ECS_CONTAINER_METADATA_URI_V4"],
    );
    let access = "[{now}] \"GET /users/42?token=x HTTP/1.1\" 200 0 512 12 11 \"-\" \"okhttp/4.12.0\" \"6d67d674-2122-4a2d-b172-0be70c674371\" \"orders\" \"10.0.1.5:8080\"";
    docker_send(
        &addresses.unix,
        "envoy-firelens-t1",
        "e2",
        "/ecs-orders-7-envoy-1",
        &[("stdout", access), ("stderr", "an app line")],
    );
    wait_until("both lines written", Duration::from_millis(50), || {
        let (_, s) = scrape(&sidecar.admin);
        s.get("sluice_lines_total{kind=app}").copied() == Some(1.0)
            && s.get("sluice_lines_total{kind=access}").copied() == Some(1.0)
    });
    let (_, samples) = scrape(&sidecar.admin);
    let (status, _) = sidecar.stop();
    assert!(status.success());
    let read = |stream: &str| {
        let path = dir
            .join("%2Fecs%2Fdefault%2Fenvoy")
            .join(format!("t1%2F{stream}.ndjson"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let access_text = read("access");
    assert_eq!(
        access_text,
        "{\"method\":\"GET\",\"path\":\"/users/42?token=REDACTED\",\"protocol\":\"HTTP/1.1\",\"response_code\":200,\"bytes_received\":0,\"bytes_sent\":512,\"duration\":12,\"upstream_service_time\":11,\"user_agent\":\"okhttp/4.12.0\",\"request_id\":\"6d67d674-2122-4a2d-b172-0be70c674371\",\"authority\":\"orders\",\"upstream_host\":\"10.0.1.5:8080\",\"route\":\"GET /users/{id}\"}\n"
    );
    // The file output writes application lines as JSON; with nothing
    // configured in, only the line.
    let app_text = read("envoy");
    assert_eq!(app_text, "{\"log\":\"an app line\"}\n");
    let billed = |text: &str| (text.trim_end().len() + 26) as f64;
    assert_eq!(
        samples.get("sluice_ingest_bytes_total{kind=access}"),
        Some(&billed(&access_text))
    );
    assert_eq!(
        samples.get("sluice_ingest_bytes_total{kind=app}"),
        Some(&billed(&app_text))
    );
    let stats = read("stats");
    assert_eq!(stats.lines().count(), 1);
    // The statistics are written when their interval closes, on the wall
    // clock's minute, or at the stop: the scrape saw them only when a
    // minute began between the lines and the scrape.
    let stats_bytes = samples.get("sluice_ingest_bytes_total{kind=stats}");
    assert!(
        stats_bytes == Some(&0.0) || stats_bytes == Some(&billed(&stats)),
        "{stats_bytes:?} for {stats}"
    );
}
