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

// The platform-arch pairs this package ships a binary for: the "ktx.native" keys that
// `cargo xtask pack-npm` stamps into package.json (this list is the fallback for an unpacked tree).
function supportedTargets(pkg) {
  if (pkg.ktx && pkg.ktx.native && typeof pkg.ktx.native === "object") {
    return Object.keys(pkg.ktx.native).sort();
  }
  return ["linux-x64"];
}

function fail(message) {
  process.stderr.write(message);
  process.exit(1);
}

function main() {
  const target = `${process.platform}-${process.arch}`;
  const exe = process.platform === "win32" ? "ktx.exe" : "ktx";
  const binary = path.join(packageRoot, "native", target, exe);
  const pkg = packageJson();
  const supported = supportedTargets(pkg);

  if (!supported.includes(target)) {
    fail(
      `ktx: unsupported platform ${target}: this package has no native ktx binary for it.\n` +
        `Supported platforms: ${supported.length ? supported.join(", ") : "(none)"}.\n` +
        `Please report your platform at https://github.com/kaelio/ktx/issues\n`
    );
  }
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
