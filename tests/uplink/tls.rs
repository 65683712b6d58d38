//! TLS to the station's broker: a real mosquitto that requires a client
//! certificate from the station's CA and a username/password. Certificates are
//! made with the openssl CLI for each run.

use crate::common;
use crate::uplink_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse::station::{Connection, Endpoint};
use gatehouse::store::outbox;
use gatehouse::uplink::{topics, NoGates, Stopped};
use uplink_support::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .output()
        .expect("openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all
/// signed by the CA; plus an unrelated CA to prove verification happens.
fn make_pki(dir: &Path) {
    for (name, subject) in [
        ("ca", "/CN=Test Police Station CA"),
        ("rogue-ca", "/CN=Rogue CA"),
    ] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-subj",
                subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }
    for (name, cn, ext) in [
        (
            "server",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        ),
        (
            "gateway",
            "lotus-gw1",
            "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
        ),
    ] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
}

struct TlsBroker {
    port: u16,
    child: std::process::Child,
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tls_broker(dir: &Path) -> TlsBroker {
    let port = common::free_port();
    let passwd = dir.join("passwd");
    std::fs::write(&passwd, "").unwrap();
    let out = Command::new("mosquitto_passwd")
        .args(["-b"])
        .arg(&passwd)
        .args(["gw1", "s3cret-pass"])
        .output()
        .expect("mosquitto_passwd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut conf = format!(
        "listener {port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n\
         require_certificate true\nallow_anonymous false\npassword_file {d}/passwd\npersistence false\n",
        d = dir.display()
    );
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root.unwrap_or(false) {
        conf.push_str("user root\n");
    }
    std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
    let bin = if Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    };
    let child = Command::new(bin)
        .arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "TLS mosquitto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    TlsBroker { port, child }
}

fn uplink_section(pki: &Path, ca: &str) -> String {
    let d = pki.display();
    std::fs::write(pki.join("mqtt-password"), "s3cret-pass\n").unwrap();
    format!(
        "ca_file = \"{d}/{ca}\"\nclient_cert = \"{d}/gateway.pem\"\nclient_key = \"{d}/gateway.key\"\n\
         username = \"gw1\"\npassword_file = \"{d}/mqtt-password\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_over_tls_with_a_client_certificate_and_refuses_an_unknown_ca() {
    let pki = common::Scratch::new("pki");
    make_pki(pki.path());
    let broker = start_tls_broker(pki.path());
    let url = format!("mqtts://127.0.0.1:{}", broker.port);

    // The station listens over TLS too (its own client certificate, same CA).
    let read = |f: &str| std::fs::read(pki.path().join(f)).unwrap();
    let endpoint = Endpoint {
        broker: url.parse().unwrap(),
        ca_pem: Some(read("ca.pem")),
        client_auth: Some((read("gateway.pem"), read("gateway.key"))),
        credentials: Some(("gw1".into(), "s3cret-pass".into())),
    };
    let mut station = Connection::open(&endpoint, Duration::from_secs(10))
        .await
        .expect("station connects over TLS");
    station
        .subscribe(
            &topics::event_filter(SITE, Some(GATEWAY)),
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    // A gateway that trusts another CA must not talk to this broker.
    let rogue = Gateway::new("tls-rogue", &uplink_section(pki.path(), "rogue-ca.pem"));
    let rogue_store = rogue.store();
    swipe(rogue_store.conn(), 1);
    let task = UplinkTask::start(rogue.settings(Some(&url)), Arc::new(NoGates));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(task.stop().await, Stopped::Shutdown);
    assert_eq!(
        outbox_depth(&rogue_store),
        1,
        "nothing delivered to a broker with an untrusted certificate"
    );

    let gw = Gateway::new("tls", &uplink_section(pki.path(), "ca.pem"));
    let store = gw.store();
    let record = swipe(store.conn(), 2);
    let mut settings = gw.settings(Some(&url));
    assert!(settings.broker.as_ref().unwrap().tls);
    settings.exit_when_drained = true;
    let (_keep_running, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = tokio::time::timeout(
        Duration::from_secs(20),
        gatehouse::uplink::run(settings, Arc::new(NoGates), Default::default(), stop_rx),
    )
    .await
    .expect("drains within 20 s")
    .expect("uplink over TLS");
    assert_eq!(stopped, Stopped::Drained);
    assert_eq!(outbox::depth(store.conn()).unwrap().events, 0);

    let m = tokio::time::timeout(Duration::from_secs(10), station.next_message())
        .await
        .unwrap()
        .unwrap();
    let e: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(e["id"], record.id.as_str());
    assert_valid(&schema("event.schema.json"), "event over TLS", &e);
}
