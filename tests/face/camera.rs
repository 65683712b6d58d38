//! The camera layer with real sources: the video clip through OpenCV's
//! VideoCapture, a file that is missing at first, and an RTSP URL nobody answers.

use crate::common;

use std::time::{Duration, Instant};

use gatehouse::face::camera::{Camera, CameraOptions, CameraState, Source};
use opencv::prelude::*;

fn clip() -> std::path::PathBuf {
    common::faces_dir().join("video/short_hamilton_clip.mp4")
}

fn fast_retry() -> CameraOptions {
    CameraOptions {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..CameraOptions::default()
    }
}

fn wait_for(camera: &Camera, what: impl Fn(&CameraState) -> bool, limit: Duration) -> CameraState {
    let deadline = Instant::now() + limit;
    loop {
        let state = camera.state();
        if what(&state) || Instant::now() > deadline {
            return state;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_slow_reader_gets_the_newest_frame_and_the_skipped_ones_count_as_dropped() {
    let camera = Camera::open(Source::File(clip()), CameraOptions::default());
    let mut seqs = Vec::new();
    // Take a frame only every 150 ms: the file plays at its own rate meanwhile.
    while let Some(frame) = camera.next_frame(Duration::from_secs(5)) {
        assert!(frame.image.cols() > 0 && frame.image.rows() > 0);
        seqs.push(frame.seq);
        if seqs.len() == 6 {
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(seqs.len(), 6, "clip gave fewer frames than expected");
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "frames out of order: {seqs:?}"
    );
    assert!(
        seqs.windows(2).any(|w| w[1] > w[0] + 1),
        "a slow reader should skip frames, got {seqs:?}"
    );
    let stats = camera.stats();
    assert_eq!(stats.frames_taken, 6);
    assert!(stats.frames_dropped > 0, "{stats:?}");
    assert!(stats.frames_read >= stats.frames_taken + stats.frames_dropped - 1);
}

#[test]
fn a_video_file_plays_to_the_end_and_reports_ended() {
    let camera = Camera::open(Source::File(clip()), CameraOptions::default());
    let mut n = 0;
    while camera.next_frame(Duration::from_secs(5)).is_some() {
        n += 1;
    }
    assert!(n > 10, "only {n} frames");
    assert_eq!(camera.state(), CameraState::Ended);
    let stats = camera.stats();
    assert!(stats.fps > 5.0, "paced at the file's rate, got {stats:?}");
}

#[test]
fn a_missing_source_is_retried_with_backoff_and_picked_up_when_it_appears() {
    let dir = common::Scratch::new("camera-missing");
    let path = dir.path().join("later.mp4");
    let camera = Camera::open(Source::File(path.clone()), fast_retry());
    let state = wait_for(
        &camera,
        |s| matches!(s, CameraState::Reconnecting { attempt, .. } if *attempt >= 2),
        Duration::from_secs(30),
    );
    match &state {
        CameraState::Reconnecting { error, .. } => {
            assert!(
                error.contains("later.mp4"),
                "error should name the file: {error}"
            )
        }
        other => panic!("expected reconnecting, got {other:?}"),
    }
    assert!(camera.next_frame(Duration::from_millis(100)).is_none());
    std::fs::copy(clip(), &path).unwrap();
    // Generous: the wait ends with the first frame, however busy the machine.
    let frame = camera.next_frame(Duration::from_secs(30));
    assert!(
        frame.is_some(),
        "no frame after the file appeared: {:?}",
        camera.state()
    );
    assert_eq!(camera.state(), CameraState::Streaming);
    assert!(camera.stats().reconnects >= 2);
}

#[test]
fn an_rtsp_camera_nobody_answers_is_reported_not_a_crash() {
    let port = common::free_port();
    let mut camera = Camera::open(
        Source::parse(&format!("rtsp://user:pw@127.0.0.1:{port}/stream")),
        fast_retry(),
    );
    assert_eq!(
        camera.label(),
        format!("rtsp://***@127.0.0.1:{port}/stream")
    );
    let state = wait_for(
        &camera,
        |s| matches!(s, CameraState::Reconnecting { .. }),
        Duration::from_secs(20),
    );
    assert!(
        matches!(state, CameraState::Reconnecting { .. }),
        "{state:?}"
    );
    camera.stop();
    assert_eq!(camera.state(), CameraState::Stopped);
    assert!(camera.next_frame(Duration::from_millis(10)).is_none());
}
