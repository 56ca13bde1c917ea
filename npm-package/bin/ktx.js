#!/usr/bin/env node
// Launcher for the native ktx binary. No dependencies: runs on a bare Node >= 18.
// It forwards argv, stdio, the exit code and signals, so `npx ktx` behaves like the binary.
"use strict";

const { spawn } = require("node:child_process");
const path = require("node:path");
const fs = require("node:fs");
const os = require("node:os");

const packageRoot = path.resolve(__dirname, "..");

// Signals that would not end this Node process if re-raised (see the exit handler).
const NOT_RERAISED = new Set(["SIGUSR1", "SIGPIPE"]);

// This package's package.json, or {} when it cannot be read (an unpacked tree).
function packageJson() {
  try {
    return JSON.parse(fs.readFileSync(path.join(packageRoot, "package.json"), "utf8"));
  } catch (_) {
    return {};
  }
}

// The npm target (the `<platform>-<arch>` key of "ktx.native" that `cargo xtask pack-npm`
// stamps into package.json) for each `process.platform`/`process.arch` pair ktx is built for.
// Any other pair (freebsd, linux-ia32, linux-arm, ...) has no binary.
const TARGETS = {
  linux: { x64: "linux-x64", arm64: "linux-arm64" },
  darwin: { x64: "darwin-x64", arm64: "darwin-arm64" },
  win32: { x64: "win32-x64", arm64: "win32-arm64" },
};

// Targets that run a pair's binary when its own is not packed: Windows 11 on Arm runs x64
// binaries under its built-in emulation (macOS needs Rosetta, which may be absent, so no
// darwin fallback).
const EMULATED = { "win32-arm64": ["win32-x64"] };

// The npm target this platform/arch pair needs, or null when ktx is not built for it.
function targetOf(platform, arch) {
  const byArch = Object.prototype.hasOwnProperty.call(TARGETS, platform) ? TARGETS[platform] : null;
  return byArch && Object.prototype.hasOwnProperty.call(byArch, arch) ? byArch[arch] : null;
}

// The native binaries this package ships: target -> path relative to the package root, from
// package.json's "ktx.native" (an unpacked source tree has none: linux-x64 at its usual path).
// A path that would leave the package is ignored.
function packedTargets(pkg) {
  const native = pkg.ktx && pkg.ktx.native;
  if (!native || typeof native !== "object") return { "linux-x64": "native/linux-x64/ktx" };
  const out = {};
  for (const [target, meta] of Object.entries(native)) {
    const rel = meta && typeof meta.path === "string" ? meta.path : "";
    const parts = rel.split(/[\\/]/);
    if (rel && !path.isAbsolute(rel) && !parts.includes("..") && !parts.includes("")) {
      out[target] = rel;
    }
  }
  return out;
}

// The packed target to run for this pair: its own, else one it emulates; null if none.
function chooseTarget(wanted, packed) {
  if (!wanted) return null;
  for (const t of [wanted, ...(EMULATED[wanted] || [])]) {
    if (Object.prototype.hasOwnProperty.call(packed, t)) return t;
  }
  return null;
}

function fail(message) {
  process.stderr.write(message);
  process.exit(1);
}

function main() {
  const pair = `${process.platform}-${process.arch}`;
  const pkg = packageJson();
  const packed = packedTargets(pkg);
  const target = chooseTarget(targetOf(process.platform, process.arch), packed);

  if (!target) {
    const supported = Object.keys(packed).sort();
    fail(
      `ktx: unsupported platform ${pair}: this package has no native ktx binary for it.\n` +
        `Supported platforms: ${supported.length ? supported.join(", ") : "(none)"}.\n` +
        `Please report your platform at https://github.com/kaelio/ktx/issues\n`
    );
  }
  const binary = path.join(packageRoot, ...packed[target].split("/"));
  if (!fs.existsSync(binary)) {
    fail(
      `ktx: the native binary ${binary} is missing from this installation.\n` +
        `Reinstall the package (for example: npm install @kaelio/ktx).\n`
    );
  }

  // KTX_LAUNCHER and KTX_NPM_PACKAGE tell ktx it runs from this npm package, so the commands
  // it prints read `npx @kaelio/ktx ...`: a local install has no `ktx` on PATH, and a bare
  // `npx ktx` outside one would fetch another package of that name.
  const env = {
    ...process.env,
    KTX_ASSET_DIR: path.join(packageRoot, "python"),
    KTX_LAUNCHER: "npm",
    KTX_NPM_PACKAGE: typeof pkg.name === "string" ? pkg.name : "@kaelio/ktx",
  };
  // Forward the signals a terminal or supervisor sends; the child decides how to die. The
  // handlers go in before the spawn: a signal in between would otherwise kill this process
  // with the default action and orphan the child.
  const forwarded = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];
  const handlers = {};
  let child = null;
  let pending = null; // a signal that came before the child existed
  for (const sig of forwarded) {
    handlers[sig] = () => {
      if (!child) {
        pending = sig;
        return;
      }
      try {
        child.kill(sig);
      } catch (_) {
        // child already gone
      }
    };
    process.on(sig, handlers[sig]);
  }
  child = spawn(binary, process.argv.slice(2), { stdio: "inherit", env });
  if (pending) handlers[pending]();

  child.on("error", (err) => {
    fail(`ktx: failed to start ${binary}: ${err.message}\n`);
  });

  child.on("exit", (code, signal) => {
    if (signal) {
      // Die of the same signal so our parent sees what really happened (never exit 0).
      for (const sig of forwarded) process.removeListener(sig, handlers[sig]);
      const num = os.constants.signals[signal] || 0;
      // Node does not die of every signal: SIGUSR1 starts its inspector (a debugger listening
      // on a port) and SIGPIPE is ignored. For those, exit with the shell's 128 + N.
      if (NOT_RERAISED.has(signal)) process.exit(128 + num);
      try {
        process.kill(process.pid, signal);
      } catch (_) {
        process.exit(128 + num);
      }
      // The signal is delivered asynchronously; if it is ignored (e.g. SIGPIPE in Node) or
      // cannot end us, fall back to the shell convention after a short grace period.
      setTimeout(() => process.exit(128 + num), 500);
      return;
    }
    process.exit(code === null ? 1 : code);
  });
}

main();
