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

/// Installs verdaccio into `<target>/verdaccio` unless it is already there. The test binary's
/// tests run as separate processes (nextest): a file lock makes one install while the others
/// wait, instead of two `npm install`s racing in the same directory.
fn verdaccio_bin() -> PathBuf {
    let dir = target_dir().join("verdaccio");
    std::fs::create_dir_all(&dir).unwrap();
    let _install = ktx_base::lock::FileLock::acquire(
        &target_dir().join("verdaccio.lock"),
        "install verdaccio for the release tests",
        Duration::from_secs(600),
        |_| {},
    )
    .expect("cannot lock the verdaccio install");
    let bin = dir.join("node_modules/.bin").join(if cfg!(windows) {
        "verdaccio.cmd"
    } else {
        "verdaccio"
    });
    let pj = dir.join("package.json");
    if bin.exists() && std::fs::read_to_string(&pj).ok().as_deref() == Some(VERDACCIO_PACKAGE_JSON)
    {
        return bin;
    }
    std::fs::write(&pj, VERDACCIO_PACKAGE_JSON).unwrap();
    let out = run(npm()
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

/// A policy that allows publishing: the project's own, with `releaseMode`
/// `npm-public-release-ready` and `npm.publish` true.
fn publishing_policy_json() -> serde_json::Value {
    let mut p: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("release-policy.json")).unwrap(),
    )
    .unwrap();
    p["releaseMode"] = "npm-public-release-ready".into();
    p["npm"]["publish"] = true.into();
    p
}

/// A project copy (sources and fresh dist) whose own release-policy.json allows publishing:
/// `publish` only ever uses the project's own policy.
fn publishing_project() -> tempfile::TempDir {
    let tmp = project_copy();
    std::fs::write(
        tmp.path().join("release-policy.json"),
        publishing_policy_json().to_string(),
    )
    .unwrap();
    tmp
}

/// The `integrity` of the npm artifact in `<root>/dist/manifest.json`.
fn manifest_integrity(root: &Path) -> String {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("dist/manifest.json")).unwrap())
            .unwrap();
    m["artifacts"][0]["integrity"].as_str().unwrap().to_string()
}

#[test]
fn publish_against_a_real_local_registry() {
    let project = publishing_project();
    let base = project.path();
    let reg = Registry::start();
    let npmrc = reg.npmrc();
    let cache = tempfile::tempdir().unwrap();
    let version = version();
    let spec = format!("@kaelio/ktx@{version}");
    let integrity = manifest_integrity(base);

    let publish = |root: &Path, live: bool, ci: bool| {
        let mut cmd = xtask();
        cmd.arg("publish")
            .arg("--registry")
            .arg(&reg.url)
            .arg("--root")
            .arg(root);
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
        let mut cmd = npm();
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
    let mut cmd = npm();
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
    let other = different_build(base);
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

    // 6. A live run the project's policy does not allow is refused.
    let mut cmd = xtask();
    cmd.args(["publish", "--live", "--registry", &reg.url])
        .arg("--root")
        .arg(base_project())
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
    let project = publishing_project();
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
    .arg(project.path())
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

#[test]
fn published_smoke_passes_on_what_a_live_publish_put_in_the_registry() {
    let project = publishing_project();
    let reg = Registry::start();
    let npmrc = reg.npmrc();
    let cache = tempfile::tempdir().unwrap();
    let version = version();

    // Before anything is published, the smoke fails at its first step, naming the version.
    let smoke = |v: &str| {
        let mut cmd = xtask();
        // The test package ships no bundle: a development-signed one cannot be published.
        cmd.args(["published-smoke", "--version", v, "--registry", &reg.url])
            .arg("--without-bundle");
        run(&mut cmd)
    };
    let out = smoke(&version);
    assert!(!out.status.success(), "nothing is published yet");
    assert!(
        text(&out).contains("step `P0 npm view <spec> version: published` failed"),
        "{}",
        text(&out)
    );

    let mut cmd = xtask();
    cmd.args(["publish", "--live", "--registry", &reg.url])
        .arg("--root")
        .arg(project.path())
        .env("CI", "true");
    npm_env(&mut cmd, &npmrc, cache.path());
    assert!(run(&mut cmd).status.success(), "live publish failed");

    let out = smoke(&version);
    let t = text(&out);
    assert!(out.status.success(), "published-smoke failed:\n{t}");
    for step in [
        "ok    P1 npx --yes <spec> --version",
        "ok    P2 npx <spec> sl query --yes: lazy install",
        "ok    P3 npx <spec> demo + a printed query --execute",
        "ok    1a npm install <pkg> into a private project",
        "ok    3  sl query --yes: lazy install + compile",
        "ok    5d sl query --daemon --execute: via daemon",
        "ok    8a npm install -g <pkg> --prefix <tmp>",
        "ok    9  ktx demo + a printed query --execute",
        "skip  11 ktx python: --without-bundle",
    ] {
        assert!(t.contains(step), "no `{step}` in:\n{t}");
    }
    assert!(t.contains(&format!(
        "published-smoke (@kaelio/ktx@{version}): all checks passed"
    )));
}

/// A project copy like `base` whose tarball has the same version but other bytes (a README
/// line added), packed and self-consistent.
fn different_build(base: &Path) -> tempfile::TempDir {
    let other = tempfile::tempdir().unwrap();
    copy_sources(base, other.path());
    let readme = other.path().join("npm-package/README.md");
    let mut text_readme = std::fs::read_to_string(&readme).unwrap();
    text_readme.push_str("\nA different build.\n");
    std::fs::write(&readme, text_readme).unwrap();
    pack(other.path());
    other
}

/// Downloads the tarball the registry serves for `spec` (with an empty npm cache, so the bytes
/// come from the registry) and returns them.
#[cfg(unix)] // used by the Unix-only swap test
fn served_tarball(reg: &Registry, spec: &str, npmrc: &Path) -> Vec<u8> {
    let dest = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = npm();
    cmd.args(["pack", spec, "--registry", &reg.url, "--pack-destination"])
        .arg(dest.path())
        .current_dir(dest.path());
    npm_env(&mut cmd, npmrc, cache.path());
    assert!(run(&mut cmd).status.success(), "cannot download {spec}");
    let files: Vec<PathBuf> = std::fs::read_dir(dest.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tgz"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::read(&files[0]).unwrap()
}

// The attacker is a `/bin/sh` wrapper script, so this runs on Unix only.
#[cfg(unix)]
#[test]
fn a_tarball_swapped_after_verification_is_not_what_gets_uploaded() {
    // The attacker: a `KTX_NPM` wrapper replaces dist/'s tarball with another build of the same
    // version before every npm call, i.e. after publish has verified the tarball and before
    // `npm publish` reads it. It also records the path `npm publish` is given and the modes of
    // the directories around it.
    let project = publishing_project();
    let root = project.path();
    let verified_integrity = manifest_integrity(root);
    let tgz_name = format!("kaelio-ktx-{}.tgz", version());
    let dist_tgz = root.join("dist/npm").join(&tgz_name);
    let verified = std::fs::read(&dist_tgz).unwrap();
    let other = different_build(root);
    let swapped = std::fs::read(other.path().join("dist/npm").join(&tgz_name)).unwrap();
    assert_ne!(verified, swapped);

    let reg = Registry::start();
    let npmrc = reg.npmrc();
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("publish-args.log");
    let wrapper = work.path().join("npm-swapping");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\n\
         cp \"$SWAP_FROM\" \"$SWAP_TO\" || exit 97\n\
         if [ \"$1\" = publish ]; then\n\
           d=$(dirname \"$2\")\n\
           echo \"$2 $(stat -c %a \"$d\") $(stat -c %a \"$(dirname \"$(dirname \"$d\")\")\")\" >> \"$SWAP_LOG\"\n\
         fi\n\
         exec npm \"$@\"\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let swap_from = work.path().join("swapped.tgz");
    std::fs::write(&swap_from, &swapped).unwrap();

    let mut cmd = xtask();
    cmd.args(["publish", "--live", "--registry", &reg.url])
        .arg("--root")
        .arg(root)
        .env("CI", "true")
        .env("KTX_NPM", &wrapper)
        .env("SWAP_FROM", &swap_from)
        .env("SWAP_TO", &dist_tgz)
        .env("SWAP_LOG", &log);
    npm_env(&mut cmd, &npmrc, cache.path());
    let out = run(&mut cmd);
    assert_eq!(
        std::fs::read(&dist_tgz).unwrap(),
        swapped,
        "the wrapper must have replaced the tarball in dist/"
    );

    // What the registry serves is, byte for byte, what was verified, not what dist/ now holds.
    let spec = format!("@kaelio/ktx@{}", version());
    let served = served_tarball(&reg, &spec, &npmrc);
    assert!(
        served == verified,
        "the registry serves {} bytes (the swapped build: {}), not the {} verified bytes",
        served.len(),
        served == swapped,
        verified.len()
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("({verified_integrity})")),
        "{}",
        text(&out)
    );

    // `npm publish` was given a private copy: not dist/'s file, in 0700 directories.
    let logged = std::fs::read_to_string(&log).unwrap();
    let line = logged.lines().next().expect("npm publish never ran");
    let parts: Vec<&str> = line.split(' ').collect();
    assert_eq!(parts.len(), 3, "{line}");
    assert!(
        !Path::new(parts[0]).starts_with(root) && parts[0].ends_with(&tgz_name),
        "npm publish was given {}",
        parts[0]
    );
    assert_eq!((parts[1], parts[2]), ("700", "700"), "{line}");
    assert!(
        !Path::new(parts[0]).exists(),
        "the private copy is removed afterwards"
    );
}

#[test]
fn a_live_publish_with_a_foreign_policy_is_refused() {
    // The project's own policy forbids publishing; a policy file from elsewhere that allows it
    // must not open the gate, even with CI=true.
    let base = base_project();
    let foreign_dir = tempfile::tempdir().unwrap();
    let foreign = foreign_dir.path().join("release-policy.json");
    std::fs::write(&foreign, publishing_policy_json().to_string()).unwrap();
    let reg = Registry::start();
    let npmrc = reg.npmrc();
    let cache = tempfile::tempdir().unwrap();
    let spec = format!("@kaelio/ktx@{}", version());

    for extra in [&["--live"][..], &[]] {
        let mut cmd = xtask();
        cmd.args(["publish", "--registry", &reg.url])
            .args(extra)
            .arg("--root")
            .arg(base)
            .arg("--policy")
            .arg(&foreign)
            .env("CI", "true");
        npm_env(&mut cmd, &npmrc, cache.path());
        let out = run(&mut cmd);
        assert!(!out.status.success(), "{extra:?}: {}", text(&out));
        assert!(text(&out).contains("--policy"), "{}", text(&out));
    }

    let mut cmd = npm();
    cmd.args(["view", &spec, "version", "--json", "--registry", &reg.url]);
    npm_env(&mut cmd, &npmrc, cache.path());
    let out = run(&mut cmd);
    assert!(
        !out.status.success() && text(&out).contains("E404"),
        "nothing may be published: {}",
        text(&out)
    );
}
