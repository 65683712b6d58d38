//! scripts/build-deb.sh packages the built binary with everything the unit
//! refers to, and what it installs works: the binary runs, the example config
//! passes `config check`, the systemd files are the repository's.
//! Needs dpkg-deb (Debian) and binutils' strip.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ort_dylib, Scratch};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn package_installs_the_binary_runtime_unit_user_dirs_and_config() {
    let out = Scratch::new("deb");
    let ort = std::fs::canonicalize(ort_dylib()).unwrap();
    let deb = run(Command::new(repo("scripts/build-deb.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_gatehouse")])
        .arg("--onnxruntime")
        .arg(&ort)
        .arg("--out")
        .arg(out.path())
        .args(["--compress", "none"]));
    let deb = PathBuf::from(deb.trim());
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        format!("gatehouse_{version}_amd64.deb")
    );

    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let entry = |path: &str| -> String {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .unwrap_or_else(|| panic!("{path} not in the package:\n{listing}"))
            .to_string()
    };
    for (path, mode) in [
        ("/usr/bin/gatehouse", "-rwxr-xr-x"),
        ("/usr/lib/gatehouse/libonnxruntime.so", "-rw-r--r--"),
        ("/usr/lib/systemd/system/gatehouse.service", "-rw-r--r--"),
        ("/usr/lib/sysusers.d/gatehouse.conf", "-rw-r--r--"),
        ("/usr/lib/tmpfiles.d/gatehouse.conf", "-rw-r--r--"),
        ("/etc/gatehouse/gatehouse.toml", "-rw-r-----"),
        ("/usr/share/doc/gatehouse/README.md", "-rw-r--r--"),
        ("/usr/share/doc/gatehouse/copyright", "-rw-r--r--"),
        // Generated from the CLI's own definitions (`gatehouse docs`).
        ("/usr/share/man/man1/gatehouse.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man1/gatehouse-log.1.gz", "-rw-r--r--"),
        (
            "/usr/share/bash-completion/completions/gatehouse",
            "-rw-r--r--",
        ),
        ("/usr/share/zsh/vendor-completions/_gatehouse", "-rw-r--r--"),
        (
            "/usr/share/fish/vendor_completions.d/gatehouse.fish",
            "-rw-r--r--",
        ),
    ] {
        let line = entry(path);
        assert!(line.starts_with(mode), "{line}");
        assert!(line.contains(" root/root "), "{line}");
    }
    assert!(listing.lines().next().unwrap().starts_with("drwxr-xr-x"));

    let field = |name: &str| run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name));
    assert_eq!(field("Package").trim(), "gatehouse");
    assert_eq!(field("Version").trim(), version);
    assert_eq!(field("Architecture").trim(), "amd64");
    // Computed from the binaries' shared libraries (dpkg-shlibdeps), with versions.
    let depends = field("Depends");
    for dep in [
        "libc6 (>= ",
        "libopencv-videoio406 (>= ",
        "libstdc++6",
        "init-system-helpers",
    ] {
        assert!(depends.contains(dep), "no {dep} in Depends: {depends}");
    }

    let root = out.path().join("root");
    run(Command::new("dpkg-deb").arg("-R").arg(&deb).arg(&root));
    assert_eq!(
        std::fs::read_to_string(root.join("DEBIAN/conffiles")).unwrap(),
        "/etc/gatehouse/gatehouse.toml\n"
    );
    for script in ["postinst", "prerm", "postrm"] {
        run(Command::new("sh")
            .arg("-n")
            .arg(root.join("DEBIAN").join(script)));
    }
    let postinst = std::fs::read_to_string(root.join("DEBIAN/postinst")).unwrap();
    assert!(postinst.contains("systemd-sysusers /usr/lib/sysusers.d/gatehouse.conf"));
    assert!(postinst.contains("systemd-tmpfiles --create /usr/lib/tmpfiles.d/gatehouse.conf"));
    // The device secret outside the data directory: created, or moved from an older install.
    assert!(postinst.contains("key=/etc/gatehouse/device.key"));
    assert!(postinst.contains("/var/lib/gatehouse/device.key \"$key\""));
    assert!(postinst.contains("deb-systemd-helper update-state gatehouse.service"));
    let postrm = std::fs::read_to_string(root.join("DEBIAN/postrm")).unwrap();
    assert!(postrm.contains("deb-systemd-helper purge gatehouse.service"));
    // The licences of what the binary links, and ONNX Runtime's.
    let copyright =
        std::fs::read_to_string(root.join("usr/share/doc/gatehouse/copyright")).unwrap();
    for needle in [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
        "  rusqlite ",
        "  rumqttc ",
        "Files: usr/lib/gatehouse/libonnxruntime.so",
    ] {
        assert!(copyright.contains(needle), "no {needle:?} in:\n{copyright}");
    }
    assert!(
        !copyright.contains("  criterion "),
        "a dev-dependency is not linked"
    );
    let bash =
        std::fs::read_to_string(root.join("usr/share/bash-completion/completions/gatehouse"))
            .unwrap();
    assert!(
        bash.contains("simulate") && bash.contains("--data-dir"),
        "{bash}"
    );
    assert!(
        !listing.contains("gatehouse-docs.1"),
        "the hidden docs command gets no man page"
    );
    for (packaged, source) in [
        (
            "usr/lib/systemd/system/gatehouse.service",
            "systemd/gatehouse.service",
        ),
        (
            "usr/lib/sysusers.d/gatehouse.conf",
            "systemd/gatehouse.sysusers",
        ),
        (
            "usr/lib/tmpfiles.d/gatehouse.conf",
            "systemd/gatehouse.tmpfiles",
        ),
        (
            "etc/gatehouse/gatehouse.toml",
            "config/gatehouse.example.toml",
        ),
    ] {
        assert_eq!(
            std::fs::read(root.join(packaged)).unwrap(),
            std::fs::read(repo(source)).unwrap(),
            "{packaged}"
        );
    }
    assert_eq!(
        std::fs::read(root.join("usr/lib/gatehouse/libonnxruntime.so")).unwrap(),
        std::fs::read(&ort).unwrap()
    );

    // Every installed path the unit names is in the package.
    let unit =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/gatehouse.service")).unwrap();
    for path in [
        "/usr/bin/gatehouse",
        "/usr/lib/gatehouse/libonnxruntime.so",
        "/etc/gatehouse/gatehouse.toml",
        "/usr/share/doc/gatehouse/README.md",
    ] {
        assert!(unit.contains(path), "the unit no longer names {path}");
        assert!(root.join(&path[1..]).is_file(), "{path}");
    }

    // The packaged (stripped) binary runs and accepts the packaged config.
    let bin = root.join("usr/bin/gatehouse");
    let v = run(Command::new(&bin).arg("--version"));
    assert!(v.contains(version), "{v}");
    let check = run(Command::new(&bin)
        .arg("config")
        .arg("check")
        .arg(root.join("etc/gatehouse/gatehouse.toml")));
    assert!(check.contains(": ok"), "{check}");
}
