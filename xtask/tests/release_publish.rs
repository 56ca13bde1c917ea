//! `cargo xtask publish` against a REAL local npm registry: verdaccio, installed from the npm
//! registry into `<target>/verdaccio` (once; reused afterwards), started on 127.0.0.1 with a free
//! port, temporary storage and a config that allows anonymous publishing and has no uplinks
//! (nothing is proxied anywhere). It is killed at the end of the test, even on failure.

mod release_support;

use release_support::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Pinned verdaccio; `node-fetch` is overridden because verdaccio-audit asks for the dist-tag
/// `node-fetch@cjs`, which not every registry mirror serves.
const VERDACCIO_PACKAGE_JSON: &str = r#"{
  "private": true,
  "dependencies": {"verdaccio": "6.1.6"},
  "overrides": {"node-fetch": "2.7.0"}
}
"#;

/// Installs verdaccio into `<target>/verdaccio` unless it is already there.
fn verdaccio_bin() -> PathBuf {
    let dir = target_dir().join("verdaccio");
    let bin = dir.join("node_modules/.bin/verdaccio");
    let pj = dir.join("package.json");
    if bin.exists() && std::fs::read_to_string(&pj).ok().as_deref() == Some(VERDACCIO_PACKAGE_JSON)
    {
        return bin;
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&pj, VERDACCIO_PACKAGE_JSON).unwrap();
    let out = run(Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--no-package-lock",
        ])
        .current_dir(&dir));
    assert!(
        out.status.success(),
        "cannot install verdaccio from the npm registry into {}",
        dir.display()
    );
    assert!(bin.exists(), "{} missing after npm install", bin.display());
    bin
}

/// A free loopback port (bound, then released for the registry to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP GET on loopback; returns the status line, if any.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .map(str::to_string)
}

/// A running verdaccio, killed (by its pid) when dropped.
struct Registry {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn start() -> Registry {
        let bin = verdaccio_bin();
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "storage: {}\nauth:\n  htpasswd:\n    file: {}\n    max_users: -1\nuplinks: {{}}\n\
                 packages:\n  '**':\n    access: $all\n    publish: $anonymous\n    unpublish: $anonymous\n\
                 web:\n  enable: false\nlog: {{ type: stdout, format: pretty, level: warn }}\n",
                storage.display(),
                dir.path().join("htpasswd").display()
            ),
        )
        .unwrap();
        for _attempt in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("verdaccio.log")).unwrap();
            let mut child = Command::new(&bin)
                .arg("--config")
                .arg(&config)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("cannot start verdaccio");
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if http_get(port, "/-/ping").is_some_and(|l| l.contains(" 200")) {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if up {
                return Registry {
                    child,
                    url: format!("http://127.0.0.1:{port}/"),
                    dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "verdaccio did not come up on port {port}:\n{}",
                std::fs::read_to_string(dir.path().join("verdaccio.log")).unwrap_or_default()
            );
        }
        panic!("verdaccio did not start");
    }

    /// A user npmrc for this registry: a placeholder token (anonymous publishing is allowed;
    /// npm just refuses to publish without some credential).
    fn npmrc(&self) -> PathBuf {
        let host = self.url.trim_start_matches("http:");
        let path = self.dir.path().join("npmrc");
        std::fs::write(
            &path,
            format!(
                "registry={}\n{host}:_authToken=anonymous-test-token\n",
                self.url
            ),
        )
        .unwrap();
        path
    }
}

/// npm environment pointing at a private npmrc and cache, with fast failure.
fn npm_env(cmd: &mut Command, npmrc: &Path, cache: &Path) {
    cmd.env("NPM_CONFIG_USERCONFIG", npmrc)
        .env("NPM_CONFIG_CACHE", cache)
        .env("NPM_CONFIG_PREFER_ONLINE", "true")
        .env("NPM_CONFIG_FETCH_RETRIES", "0")
        .env("NPM_CONFIG_UPDATE_NOTIFIER", "false");
}

/// A policy that allows publishing (written next to the project copy).
fn publishing_policy(dir: &Path) -> PathBuf {
    let path = dir.join("publish-policy.json");
    let mut p: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("release-policy.json")).unwrap(),
    )
    .unwrap();
    p["releaseMode"] = "npm-public-release-ready".into();
    p["npm"]["publish"] = true.into();
    std::fs::write(&path, p.to_string()).unwrap();
    path
}

#[test]
fn publish_against_a_real_local_registry() {
    let base = base_project();
    let reg = Registry::start();
    let npmrc = reg.npmrc();
    let cache = tempfile::tempdir().unwrap();
    let policy_dir = tempfile::tempdir().unwrap();
    let policy = publishing_policy(policy_dir.path());
    let version = version();
    let spec = format!("@kaelio/ktx@{version}");
    let integrity = {
        let m: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(base.join("dist/manifest.json")).unwrap(),
        )
        .unwrap();
        m["artifacts"][0]["integrity"].as_str().unwrap().to_string()
    };

    let publish = |root: &Path, live: bool, ci: bool| {
        let mut cmd = xtask();
        cmd.arg("publish")
            .arg("--registry")
            .arg(&reg.url)
            .arg("--root")
            .arg(root);
        cmd.arg("--policy").arg(&policy);
        if live {
            cmd.arg("--live");
        }
        if ci {
            cmd.env("CI", "true");
        }
        npm_env(&mut cmd, &npmrc, cache.path());
        run(&mut cmd)
    };
    let view = |args: &[&str]| {
        let mut cmd = Command::new("npm");
        cmd.arg("view")
            .args(args)
            .arg("--json")
            .arg("--registry")
            .arg(&reg.url);
        npm_env(&mut cmd, &npmrc, cache.path());
        run(&mut cmd)
    };
    let absent = || {
        let out = view(&[&spec, "version"]);
        !out.status.success() && text(&out).contains("E404")
    };

    // As for every release after the first, the package already exists with another version:
    // `npm view NAME@VERSION` must still read as absent, and the live publish go ahead.
    let older = tempfile::tempdir().unwrap();
    std::fs::write(
        older.path().join("package.json"),
        r#"{"name": "@kaelio/ktx", "version": "0.0.1", "license": "MIT"}"#,
    )
    .unwrap();
    let mut cmd = Command::new("npm");
    cmd.args(["publish", "--tag", "old", "--registry", &reg.url])
        .current_dir(older.path());
    npm_env(&mut cmd, &npmrc, cache.path());
    assert!(run(&mut cmd).status.success(), "cannot publish 0.0.1");
    assert!(absent());

    // 1. The default is a dry run: it runs npm publish --dry-run and publishes nothing.
    let out = publish(base, false, true);
    assert!(out.status.success());
    let t = text(&out);
    assert!(
        t.contains("--dry-run") && t.contains("--tag next") && t.contains("--access public"),
        "{t}"
    );
    assert!(t.contains("nothing was published"), "{t}");
    assert!(absent(), "a dry run must not publish");

    // 2. --live without CI=true is refused, and nothing is published.
    let out = publish(base, true, false);
    assert!(!out.status.success());
    assert!(text(&out).contains("CI=true is not set"), "{}", text(&out));
    assert!(absent());

    // 3. --live with CI=true publishes; npm view sees the version, its integrity and the tag.
    let out = publish(base, true, true);
    assert!(out.status.success(), "live publish failed");
    assert!(!text(&out).contains("--force"));
    assert!(
        !text(&out).contains("--provenance"),
        "provenance only in GitHub Actions"
    );
    let out = view(&[&spec, "version"]);
    assert!(out.status.success());
    assert_eq!(
        serde_json::from_slice::<String>(&out.stdout).unwrap(),
        version
    );
    let out = view(&[&spec, "dist.integrity"]);
    assert_eq!(
        serde_json::from_slice::<String>(&out.stdout).unwrap(),
        integrity
    );
    let out = view(&["@kaelio/ktx", "dist-tags"]);
    let tags: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tags["next"], version.as_str(), "{tags}");
    assert_eq!(tags["old"], "0.0.1", "other tags are left alone: {tags}");

    // 4. A second live run is a no-op success.
    let out = publish(base, true, true);
    assert!(out.status.success());
    assert!(
        text(&out).contains("already published with the same integrity"),
        "{}",
        text(&out)
    );

    // 5. A different (but self-consistent, ready) tarball with the same version is refused.
    let other = tempfile::tempdir().unwrap();
    copy_sources(base, other.path());
    let readme = other.path().join("npm-package/README.md");
    let mut text_readme = std::fs::read_to_string(&readme).unwrap();
    text_readme.push_str("\nA different build.\n");
    std::fs::write(&readme, text_readme).unwrap();
    pack(other.path());
    let out = publish(other.path(), true, true);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("already published with integrity") && t.contains("Nothing was published"),
        "{t}"
    );
    let out = view(&[&spec, "dist.integrity"]);
    assert_eq!(
        serde_json::from_slice::<String>(&out.stdout).unwrap(),
        integrity,
        "the registry must be unchanged"
    );

    // 6. A live run the policy does not allow is refused.
    let mut cmd = xtask();
    cmd.args(["publish", "--live", "--registry", &reg.url])
        .arg("--root")
        .arg(base)
        .env("CI", "true");
    npm_env(&mut cmd, &npmrc, cache.path());
    let out = run(&mut cmd);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("npm.publish is false"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_unreachable_registry_fails_closed() {
    let base = base_project();
    let policy_dir = tempfile::tempdir().unwrap();
    let policy = publishing_policy(policy_dir.path());
    let cache = tempfile::tempdir().unwrap();
    let npmrc = cache.path().join("npmrc");
    std::fs::write(&npmrc, "").unwrap();
    let port = free_port(); // nothing listens there
    let mut cmd = xtask();
    cmd.args([
        "publish",
        "--live",
        "--registry",
        &format!("http://127.0.0.1:{port}/"),
    ])
    .arg("--root")
    .arg(base)
    .arg("--policy")
    .arg(&policy)
    .env("CI", "true");
    npm_env(&mut cmd, &npmrc, cache.path());
    let out = run(&mut cmd);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("fail closed") && t.contains("nothing was published"),
        "{t}"
    );
}
