//! The coordination service with 4 processes on loopback: put, blocking get and barrier; a
//! timeout naming the missing process; clean shutdown.

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bv_core::distributed::{CoordinationClient, Coordinator, DistError, ProcessInfo};

const N: usize = 4;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts this test binary as process `id` of a job of `N`, running `child` in `mode`.
fn spawn(id: usize, port: u16, mode: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BV_COORDINATOR", format!("127.0.0.1:{port}"))
        .env("BV_NUM_PROCESSES", N.to_string())
        .env("BV_PROCESS_ID", id.to_string())
        .env("BV_TEST_MODE", mode)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(children: Vec<std::process::Child>) -> Vec<Output> {
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

#[test]
fn four_processes_put_get_and_meet_at_a_barrier() {
    let port = free_port();
    let outs = finish((0..N).map(|i| spawn(i, port, "exchange")).collect());
    for (i, o) in outs.iter().enumerate() {
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "process {i} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            stdout.contains(&format!("process {i}: saw 0,1,2,3")),
            "{stdout}"
        );
    }
}

#[test]
fn a_missing_process_is_a_timeout_that_says_so() {
    let port = free_port();
    // Process 3 never starts.
    let outs = finish((0..N - 1).map(|i| spawn(i, port, "barrier_only")).collect());
    for o in &outs {
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            stdout.contains("barrier \"all\": 3 of 4 processes arrived"),
            "{stdout}"
        );
    }
}

#[test]
fn shutdown_releases_blocked_requests() {
    let server = Coordinator::serve("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = CoordinationClient::connect(server.addr(), Duration::from_secs(5)).unwrap();
    client.put("a", b"1").unwrap();
    assert_eq!(client.try_get("a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(client.try_get("b").unwrap(), None);
    let t = Instant::now();
    let waiter = std::thread::spawn(move || client.get("never", Duration::from_secs(30)));
    std::thread::sleep(Duration::from_millis(200));
    server.shutdown();
    let r = waiter.join().unwrap();
    assert!(matches!(r, Err(DistError::Timeout { .. })), "{r:?}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "shutdown did not release the waiter"
    );
}

#[test]
fn unreachable_coordinator_is_explained() {
    let addr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let err = CoordinationClient::connect(addr, Duration::from_millis(300))
        .err()
        .unwrap();
    assert!(err.to_string().contains("is process 0 running?"), "{err}");
}

/// The body of each child process.
#[test]
#[ignore = "run as a child process by the tests above"]
fn child() {
    let me = ProcessInfo::from_env()
        .unwrap()
        .expect("BV_* variables set by the parent");
    let server = (me.process_id == 0).then(|| Coordinator::serve(me.coordinator).unwrap());
    let kv = CoordinationClient::connect(me.coordinator, Duration::from_secs(20)).unwrap();
    match std::env::var("BV_TEST_MODE").unwrap().as_str() {
        "exchange" => {
            kv.put(
                &format!("rank/{}", me.process_id),
                me.process_id.to_string().as_bytes(),
            )
            .unwrap();
            let seen: Vec<String> = (0..me.num_processes)
                .map(|i| {
                    String::from_utf8(
                        kv.get(&format!("rank/{i}"), Duration::from_secs(20))
                            .unwrap(),
                    )
                    .unwrap()
                })
                .collect();
            kv.barrier("done", me.num_processes, Duration::from_secs(20))
                .unwrap();
            println!("process {}: saw {}", me.process_id, seen.join(","));
            // Process 0 keeps serving until everyone has passed the barrier.
            kv.barrier("exit", me.num_processes, Duration::from_secs(20))
                .unwrap();
        }
        _ => {
            let err = kv
                .barrier("all", me.num_processes, Duration::from_secs(1))
                .unwrap_err();
            println!("{err}");
            kv.barrier("seen", me.num_processes - 1, Duration::from_secs(20))
                .unwrap();
        }
    }
    drop(server);
}
