//! Fixtures for the face tests: a scratch data directory with the test models
//! (YuNet 2026may, MobileFaceNet; FaceNet on request) fetched from the
//! `../shared/models` mirror, a config file pointing at it, and minimal
//! `person` rows (the register CLI is written elsewhere).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gatehouse::config::Config;
use gatehouse::domain::ResidentId;
use gatehouse::face::pipeline::FrameProcessor;
use gatehouse::face::{self, FaceEngine, GalleryHandle, MatchPolicy};
use gatehouse::models::{self, Manifest};
use gatehouse::store::Store;

use crate::common::{self, Scratch};

pub struct FaceEnv {
    pub dir: Scratch,
    pub config: Config,
    pub config_path: PathBuf,
}

impl FaceEnv {
    /// The demo config (YuNet 2026may + MobileFaceNet, and the two liveness
    /// models) in a fresh data directory.
    pub fn new(tag: &str) -> FaceEnv {
        FaceEnv::with_models(
            tag,
            &[
                "yunet-2026may",
                "mobilefacenet",
                "minifasnet-v2",
                "minifasnet-v1se",
            ],
        )
    }

    /// Also installs the given extra models (e.g. `facenet-vggface2`).
    pub fn with_models(tag: &str, names: &[&str]) -> FaceEnv {
        let dir = Scratch::new(tag);
        let mut config = Config::demo();
        config.set_data_dir(dir.path().join("data"));
        config.models.onnxruntime = Some(common::ort_dylib());
        config.cameras.clear();
        let manifest = Manifest::builtin();
        for name in names {
            let spec = manifest.get(name).expect("model in manifest");
            models::fetch(spec, &config.models_dir(), Some(&common::models_mirror()))
                .unwrap_or_else(|e| panic!("fetch {name} from the mirror: {e:#}"));
        }
        let config_path = dir.path().join("gatehouse.toml");
        let env = FaceEnv {
            dir,
            config,
            config_path,
        };
        env.write_config();
        env
    }

    /// Writes `self.config` to the config file the CLI is pointed at.
    pub fn write_config(&self) {
        let text = toml::to_string(&self.config).expect("serialise config");
        std::fs::write(&self.config_path, text).expect("write config");
    }

    /// A frame processor at gate `east` (camera `cam`) over the gallery
    /// enrolled so far, with the configured models and policy.
    pub fn processor(&self) -> FrameProcessor {
        let store = self.store();
        let engine = FaceEngine::load(&self.config).unwrap();
        let spec = face::embedder_spec(&self.config).unwrap();
        let policy = MatchPolicy::from_config(&self.config.face, &spec).unwrap();
        let gallery = face::load_gallery(
            store.conn(),
            engine.model_name(),
            engine.embedder.dim(),
            policy.combine,
        )
        .unwrap();
        FrameProcessor::new(
            engine,
            policy,
            "east".parse().unwrap(),
            "cam".into(),
            GalleryHandle::new(gallery),
        )
    }

    pub fn store(&self) -> Store {
        Store::open_config(&self.config).expect("open store")
    }

    /// Inserts a minimal person row and returns its id.
    pub fn add_person(&self, name: &str) -> ResidentId {
        let store = self.store();
        store
            .conn()
            .execute(
                "INSERT INTO person (name, role, created_at, created_by, updated_at, updated_by)
                 VALUES (?1, 'owner', '2026-01-01T00:00:00.000Z', 'test', '2026-01-01T00:00:00.000Z', 'test')",
                [name],
            )
            .expect("insert person");
        ResidentId(store.conn().last_insert_rowid())
    }

    /// The gatehouse binary with this environment's config.
    pub fn cli(&self) -> Command {
        let mut cmd = common::gatehouse();
        cmd.arg("--config").arg(&self.config_path);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cli().args(args).output().expect("run gatehouse")
    }
}

pub fn faces(rel: &str) -> PathBuf {
    common::faces_dir().join(rel)
}

pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every photo of `identities/<person>/`, sorted.
pub fn photos_of(person: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(faces("identities").join(person))
        .expect("identities folder")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

pub fn people() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(faces("identities"))
        .expect("identities folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The demo's camera: the Hamilton clip (Lin-Manuel Miranda on stage), looping, at `gate`.
pub fn clip_camera(gate: &str) -> gatehouse::config::CameraConfig {
    gatehouse::config::CameraConfig {
        id: "east-cam".into(),
        gate: gate.parse().expect("gate id"),
        source: path_str(&faces("video/short_hamilton_clip.mp4")),
        max_fps: 10.0,
        loop_file: true,
    }
}

/// The daemon with its gates and cameras running (clock taken as synchronised).
pub async fn start_daemon_with_cameras(config: &Config) -> gatehouse::daemon::Daemon {
    use gatehouse::app::services::{start_cameras, Started};
    let mut daemon = gatehouse::daemon::Daemon::start_with(
        config,
        gatehouse::daemon::DaemonOptions {
            assume_clock_synced: Some(true),
        },
    )
    .await
    .expect("start the daemon");
    let mut started = Started::default();
    start_cameras(&mut daemon, config, &mut started).await;
    assert_eq!(
        started.cameras,
        config.cameras.len(),
        "cameras not started: {:?}",
        started.face_unavailable
    );
    daemon
}
