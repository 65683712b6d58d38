//! A test PKI made with the openssl CLI for each run (a CA, a server
//! certificate for 127.0.0.1, a client certificate, and an unrelated CA to
//! prove verification happens) and a real mosquitto with a TLS listener that
//! requires a client certificate from that CA. Shared by the uplink's and the
//! site broker's TLS tests.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
pub fn make_pki(dir: &Path) {
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

/// A mosquitto with a TLS listener on a free loopback port, stopped on drop.
pub struct TlsBroker {
    pub port: u16,
    child: std::process::Child,
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsBroker {
    /// Requires a client certificate signed by `pki`'s CA, and `login`
    /// (user, password) when given (anonymous clients otherwise).
    pub fn start(pki: &Path, login: Option<(&str, &str)>) -> TlsBroker {
        let port = super::free_port();
        let d = pki.display();
        let mut conf = format!(
            "listener {port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n\
             require_certificate true\npersistence false\n"
        );
        match login {
            Some((user, password)) => {
                let passwd = pki.join("passwd");
                std::fs::write(&passwd, "").unwrap();
                let out = Command::new("mosquitto_passwd")
                    .args(["-b"])
                    .arg(&passwd)
                    .args([user, password])
                    .output()
                    .expect("mosquitto_passwd");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {d}/passwd\n"
                ));
            }
            None => conf.push_str("allow_anonymous true\n"),
        }
        if super::unsafe_is_root() {
            conf.push_str("user root\n");
        }
        std::fs::write(pki.join("mosquitto.conf"), conf).unwrap();
        let child = Command::new(super::mosquitto_bin())
            .arg("-c")
            .arg(pki.join("mosquitto.conf"))
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

    pub fn url(&self) -> String {
        format!("mqtts://127.0.0.1:{}", self.port)
    }
}
