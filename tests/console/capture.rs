//! "Present the card at reader X now": `GateHandle::capture_card` in-process
//! on the simulated backend and a real SQLite file. The captured read opens
//! nothing, stores no access event and does not count towards a reader
//! lockout; waiting ends with a clear error; a newer capture replaces an
//! older one; a gate without a reader says so.

use crate::common;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use common::Scratch;
use gatehouse::config::Config;
use gatehouse::daemon::{CapturedCard, Daemon, DaemonOptions, GateHandle};
use gatehouse::domain::GateId;
use gatehouse::store::events::EventKind;
use gatehouse::wiegand::format;

/// How long a test waits for the gate: generous, as waits end when it answers.
const WAIT: Duration = Duration::from_secs(30);

fn gate(id: &str) -> GateId {
    id.parse().unwrap()
}

async fn start(dir: &Scratch) -> Daemon {
    let mut config = Config::demo();
    config.set_data_dir(dir.path().to_path_buf());
    config.cameras.clear();
    Daemon::start_with(
        &config,
        DaemonOptions {
            assume_clock_synced: Some(true),
        },
    )
    .await
    .unwrap()
}

type Capture = Pin<Box<dyn Future<Output = anyhow::Result<CapturedCard>> + Send>>;

/// A capture at east that the gate has taken on. Its command is sent on the
/// first poll (after a yield, with a fresh cooperative budget), and a sync
/// round trip queued behind it proves the gate handled it: the gate's commands
/// run in order. No guessed delay, however busy the machine.
async fn registered_capture(h: &GateHandle, timeout: Duration) -> Capture {
    let gate_handle = h.clone();
    let mut capture: Capture =
        Box::pin(async move { gate_handle.capture_card(&gate("east"), timeout).await });
    tokio::task::yield_now().await;
    let first = std::future::poll_fn(|cx| Poll::Ready(capture.as_mut().poll(cx))).await;
    if let Poll::Ready(ended) = first {
        panic!("the capture ended at once: {:?}", ended.err());
    }
    assert!(h.unresponsive(WAIT).await.is_empty(), "the gate answers");
    capture
}

async fn swipe(handle: &GateHandle, card: &str) -> gatehouse::daemon::simulate::SimOutcome {
    let bits = format::encode_card(&card.parse().unwrap(), None).unwrap();
    handle.simulate_wiegand(&gate("east"), &bits).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_card_is_handed_over_and_never_decided_on() {
    let dir = Scratch::new("capture");
    let daemon = start(&dir).await;
    let h = daemon.handle();
    let mut events = h.events();

    // Six captures of an unknown card in a row: none is decided, so none
    // counts towards the five-unknown-cards lockout.
    for _ in 0..6 {
        let waiting = registered_capture(&h, WAIT).await;
        let out = swipe(&h, "10:12345").await;
        assert_eq!(out.captured.as_deref(), Some("10:***45"));
        assert!(out.decision.is_none(), "{out:?}");
        let got = waiting.await.unwrap();
        assert_eq!(got.card.to_string(), "10:12345");
        assert_eq!(got.format.as_str(), "wiegand26");
    }
    while let Ok(e) = events.try_recv() {
        assert_ne!(
            e.kind,
            EventKind::Access,
            "a captured read stores no access event: {e:?}"
        );
        assert_ne!(e.reason.as_deref(), Some("reader_lockout"));
    }
    let status = h.status().await;
    let east = status.iter().find(|s| s.id == "east").unwrap();
    assert_eq!(east.lock, "locked", "nothing opened");
    assert!(east.reader.as_ref().unwrap().locked_out_s.is_none());

    // With nobody waiting, the same card is decided as usual.
    let out = swipe(&h, "10:12345").await;
    assert!(out.captured.is_none());
    assert_eq!(
        out.decision.unwrap().reason.as_deref(),
        Some("unknown_credential")
    );
    daemon.shutdown(Duration::from_secs(2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_card_ends_with_a_clear_error() {
    let dir = Scratch::new("capture-wait");
    let daemon = start(&dir).await;
    let h = daemon.handle();
    let e = h
        .capture_card(&gate("east"), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("no card was presented at gate east"),
        "{e}"
    );

    let first = registered_capture(&h, WAIT).await;
    let second = registered_capture(&h, WAIT).await;
    let e = first.await.unwrap_err();
    assert!(e.to_string().contains("cancelled by a newer one"), "{e}");
    swipe(&h, "10:777").await;
    assert_eq!(second.await.unwrap().card.to_string(), "10:777");

    let e = h
        .capture_card(&gate("car-in"), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("car-in has no card reader"), "{e}");
    let e = h
        .capture_card(&gate("west"), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no gate \"west\""), "{e}");
    daemon.shutdown(Duration::from_secs(2)).await.unwrap();
}
