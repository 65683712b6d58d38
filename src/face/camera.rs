//! Cameras through OpenCV's VideoCapture: a V4L2 device (`/dev/video0`), an
//! RTSP URL (FFmpeg backend) or a video file.
//!
//! A reader thread pulls frames as fast as the source delivers them and keeps
//! only the newest, so recognition always works on what the camera sees now
//! and never on a growing queue; frames replaced before anyone took them are
//! counted as dropped. A source that fails or disappears is reopened with
//! exponential backoff, and its state is always readable.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opencv::core::{Mat, Vector};
use opencv::prelude::*;
use opencv::videoio::{self, VideoCapture};
use serde::Serialize;

/// Where frames come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A V4L2 device path such as `/dev/video0`.
    Device(String),
    /// A network stream (`rtsp://`, `rtsps://`, `http://`), through FFmpeg.
    Stream(String),
    File(PathBuf),
}

impl Source {
    pub fn parse(s: &str) -> Source {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("/dev/") {
            Source::Device(s.to_string())
        } else if ["rtsp://", "rtsps://", "http://", "https://"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            Source::Stream(s.to_string())
        } else {
            Source::File(PathBuf::from(s))
        }
    }

    /// For logs and status: stream credentials (`rtsp://user:pass@host`) are masked.
    pub fn label(&self) -> String {
        match self {
            Source::Device(d) => d.clone(),
            Source::File(p) => p.display().to_string(),
            Source::Stream(url) => match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    format!("{}://***@{}", &url[..scheme], &url[at + 1..])
                }
                _ => url.clone(),
            },
        }
    }
}

#[derive(Clone, Debug)]
pub struct CameraOptions {
    /// Restart a video file when it ends.
    pub loop_file: bool,
    /// Play video files at their own frame rate, like a live camera.
    pub pace_files: bool,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for CameraOptions {
    fn default() -> Self {
        CameraOptions {
            loop_file: false,
            pace_files: true,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CameraState {
    Connecting,
    Streaming,
    /// Lost or never opened; the next attempt is due in `retry_in_ms`.
    Reconnecting {
        attempt: u32,
        retry_in_ms: u64,
        error: String,
    },
    /// A video file ended (and does not loop).
    Ended,
    Stopped,
}

impl CameraState {
    pub fn is_final(&self) -> bool {
        matches!(self, CameraState::Ended | CameraState::Stopped)
    }

    /// The state's name as serialised (`streaming`, `reconnecting`, …).
    pub fn name(&self) -> &'static str {
        match self {
            CameraState::Connecting => "connecting",
            CameraState::Streaming => "streaming",
            CameraState::Reconnecting { .. } => "reconnecting",
            CameraState::Ended => "ended",
            CameraState::Stopped => "stopped",
        }
    }
}

/// Counters of one camera.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CameraStats {
    pub frames_read: u64,
    pub frames_taken: u64,
    /// Frames replaced by a newer one before anyone took them.
    pub frames_dropped: u64,
    pub reconnects: u64,
    /// Frames per second read from the source, over the last second or so.
    pub fps: f32,
}

/// A frame as captured.
pub struct Frame {
    pub image: Mat,
    /// 1, 2, 3, … in capture order across reconnects.
    pub seq: u64,
    pub captured: Instant,
}

struct Slot {
    frame: Option<Frame>,
    state: CameraState,
    fps: f32,
    last_taken: u64,
}

struct Shared {
    slot: Mutex<Slot>,
    ready: Condvar,
    stop: AtomicBool,
    finished: AtomicBool,
    read: AtomicU64,
    taken: AtomicU64,
    dropped: AtomicU64,
    reconnects: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        // A panic elsewhere must not take the camera down with a poisoned lock.
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_state(&self, state: CameraState) {
        self.lock().state = state;
        self.ready.notify_all();
    }
}

/// Read-only view of a camera's state and counters (cheap to clone).
#[derive(Clone)]
pub struct CameraMonitor(Arc<Shared>);

impl CameraMonitor {
    pub fn state(&self) -> CameraState {
        self.0.lock().state.clone()
    }

    pub fn stats(&self) -> CameraStats {
        let fps = self.0.lock().fps;
        CameraStats {
            frames_read: self.0.read.load(Ordering::Relaxed),
            frames_taken: self.0.taken.load(Ordering::Relaxed),
            frames_dropped: self.0.dropped.load(Ordering::Relaxed),
            reconnects: self.0.reconnects.load(Ordering::Relaxed),
            fps,
        }
    }
}

/// A running camera: a reader thread and the newest frame.
pub struct Camera {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    label: String,
}

impl Camera {
    /// Starts reading from `source` in a background thread. Never fails: a
    /// source that cannot be opened is retried and shows in [`Camera::state`].
    pub fn open(source: Source, options: CameraOptions) -> Camera {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot {
                frame: None,
                state: CameraState::Connecting,
                fps: 0.0,
                last_taken: 0,
            }),
            ready: Condvar::new(),
            stop: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            read: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        });
        let label = source.label();
        let reader = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("camera {label}"))
            .spawn(move || {
                read_loop(&reader, &source, &options);
                reader.finished.store(true, Ordering::SeqCst);
                reader.ready.notify_all();
            })
            .ok();
        if thread.is_none() {
            shared.set_state(CameraState::Stopped);
            tracing::error!(camera = %label, "cannot start camera thread");
        }
        Camera {
            shared,
            thread,
            label,
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn monitor(&self) -> CameraMonitor {
        CameraMonitor(self.shared.clone())
    }

    pub fn state(&self) -> CameraState {
        self.monitor().state()
    }

    pub fn stats(&self) -> CameraStats {
        self.monitor().stats()
    }

    /// The newest frame not yet taken, waiting up to `timeout`. `None` on
    /// timeout, or at once when the camera has ended or stopped.
    pub fn next_frame(&self, timeout: Duration) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        let mut slot = self.shared.lock();
        loop {
            if let Some(frame) = slot.frame.take() {
                slot.last_taken = frame.seq;
                self.shared.taken.fetch_add(1, Ordering::Relaxed);
                return Some(frame);
            }
            if slot.state.is_final() {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            slot = self
                .shared
                .ready
                .wait_timeout(slot, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Stops the reader. Waits briefly for it; a reader stuck in a network
    /// read is left to finish on its own rather than blocking shutdown.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.shared.finished.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(t) = self.thread.take() {
            if self.shared.finished.load(Ordering::SeqCst) {
                let _ = t.join();
            }
        }
        self.shared.set_state(CameraState::Stopped);
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}

fn open_capture(source: &Source) -> Result<VideoCapture, String> {
    let cap = match source {
        Source::Device(path) => VideoCapture::from_file(path, videoio::CAP_V4L2),
        Source::Stream(url) => {
            // Bounded waits so a dead camera is noticed and retried, not waited on forever.
            let params = Vector::from_slice(&[
                videoio::CAP_PROP_OPEN_TIMEOUT_MSEC,
                10_000,
                videoio::CAP_PROP_READ_TIMEOUT_MSEC,
                10_000,
            ]);
            VideoCapture::from_file_with_params(url, videoio::CAP_FFMPEG, &params)
        }
        Source::File(path) => {
            if !path.is_file() {
                return Err(format!("no such video file {}", path.display()));
            }
            VideoCapture::from_file(path, videoio::CAP_ANY)
        }
    };
    let mut cap = cap.map_err(|e| format!("cannot open: {e}"))?;
    if !cap.is_opened().unwrap_or(false) {
        return Err(
            "cannot open (no such device, unreachable stream, or unsupported format)".into(),
        );
    }
    if matches!(source, Source::Device(_)) {
        // Keep the driver's queue short: we want the newest frame, not a backlog.
        let _ = cap.set(videoio::CAP_PROP_BUFFERSIZE, 1.0);
    }
    Ok(cap)
}

/// Why the inner loop ended.
enum Pause {
    Stop,
    Ended,
    Lost(String),
}

fn read_loop(shared: &Shared, source: &Source, options: &CameraOptions) {
    let mut attempt: u32 = 0;
    let mut seq: u64 = 0;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let outcome = match open_capture(source) {
            Ok(mut cap) => stream(shared, &mut cap, source, options, &mut seq, &mut attempt),
            Err(e) => Pause::Lost(e),
        };
        match outcome {
            Pause::Stop => break,
            Pause::Ended => {
                shared.set_state(CameraState::Ended);
                return;
            }
            Pause::Lost(error) => {
                attempt += 1;
                shared.reconnects.fetch_add(1, Ordering::Relaxed);
                // Between half and all of the backoff, at random: cameras
                // that dropped together (a PoE switch reboot) do not retry in step.
                let delay = backoff(attempt, options.backoff_min, options.backoff_max)
                    .mul_f64(0.5 + rand::random::<f64>() * 0.5);
                tracing::warn!(camera = %source.label(), attempt, retry_in_ms = delay.as_millis() as u64, %error, "camera unavailable");
                shared.set_state(CameraState::Reconnecting {
                    attempt,
                    retry_in_ms: delay.as_millis() as u64,
                    error,
                });
                let until = Instant::now() + delay;
                while Instant::now() < until {
                    if shared.stop.load(Ordering::SeqCst) {
                        shared.set_state(CameraState::Stopped);
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20).min(delay));
                }
            }
        }
    }
    shared.set_state(CameraState::Stopped);
}

/// `min · 2^(attempt-1)`, capped at `max`.
pub fn backoff(attempt: u32, min: Duration, max: Duration) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    min.saturating_mul(factor).min(max)
}

fn stream(
    shared: &Shared,
    cap: &mut VideoCapture,
    source: &Source,
    options: &CameraOptions,
    seq: &mut u64,
    attempt: &mut u32,
) -> Pause {
    let is_file = matches!(source, Source::File(_));
    let file_fps = cap.get(videoio::CAP_PROP_FPS).unwrap_or(0.0);
    let frame_interval = if is_file && options.pace_files {
        let fps = if file_fps.is_finite() && file_fps > 0.5 {
            file_fps
        } else {
            25.0
        };
        Some(Duration::from_secs_f64(1.0 / fps))
    } else {
        None
    };
    let started = Instant::now();
    let mut read_here: u32 = 0;
    let mut window_start = Instant::now();
    let mut window_frames = 0u32;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return Pause::Stop;
        }
        let mut image = Mat::default();
        let got = match cap.read(&mut image) {
            Ok(true) if !image.empty() => true,
            Ok(_) => false,
            Err(e) => {
                if !is_file {
                    return Pause::Lost(format!("read failed: {e}"));
                }
                false
            }
        };
        if !got {
            if is_file && read_here > 0 {
                if options.loop_file && cap.set(videoio::CAP_PROP_POS_FRAMES, 0.0).unwrap_or(false)
                {
                    read_here = 0;
                    continue;
                }
                return if options.loop_file {
                    Pause::Lost("cannot rewind video file".into())
                } else {
                    Pause::Ended
                };
            }
            return Pause::Lost(if is_file {
                "video file has no readable frames".into()
            } else {
                "stream stopped delivering frames".into()
            });
        }
        if read_here == 0 {
            *attempt = 0;
            tracing::info!(camera = %source.label(), "camera streaming");
        }
        read_here += 1;
        *seq += 1;
        shared.read.fetch_add(1, Ordering::Relaxed);
        window_frames += 1;
        {
            let mut slot = shared.lock();
            if slot.frame.is_some() {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
            slot.frame = Some(Frame {
                image,
                seq: *seq,
                captured: Instant::now(),
            });
            if slot.state != CameraState::Streaming {
                slot.state = CameraState::Streaming;
            }
            let elapsed = window_start.elapsed();
            if elapsed >= Duration::from_secs(1) {
                slot.fps = window_frames as f32 / elapsed.as_secs_f32();
                window_start = Instant::now();
                window_frames = 0;
            }
        }
        shared.ready.notify_all();
        if let Some(interval) = frame_interval {
            let due = started + interval.saturating_mul(read_here);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_told_apart_and_credentials_masked() {
        assert_eq!(
            Source::parse("/dev/video0"),
            Source::Device("/dev/video0".into())
        );
        assert!(matches!(Source::parse("rtsp://a/b"), Source::Stream(_)));
        assert!(matches!(Source::parse("clip.mp4"), Source::File(_)));
        assert_eq!(
            Source::parse("rtsp://admin:secret@10.0.0.5:554/ch1").label(),
            "rtsp://***@10.0.0.5:554/ch1"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (min, max) = (Duration::from_millis(500), Duration::from_secs(30));
        assert_eq!(backoff(1, min, max), Duration::from_millis(500));
        assert_eq!(backoff(2, min, max), Duration::from_secs(1));
        assert_eq!(backoff(4, min, max), Duration::from_secs(4));
        assert_eq!(backoff(30, min, max), max);
    }
}
